"""Node settings, built from flags and the environment by ``Settings.from_env``."""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from memorose_dagster.errors import StartupError

ENV_PREFIX = "MEMOROSE_"
# The peer password is stretched into the Fernet key that authenticates every Raft frame, and
# pysyncobj unpickles what it decrypts: a guessable one lets whoever reaches the port run code.
MIN_SECRET_BYTES = 32
MAKE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class WeakSecret(StartupError):
    """The cluster secret is missing or too short to protect the Raft port."""

MIN_KEY_CHARS = 16  # a configured key shorter than this is refused: it could be guessed


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _optional_int(text: str) -> int | None:
    return int(text) if text.strip() else None


@dataclass(frozen=True)
class Settings:
    """Every knob of a node. Environment variable = ``MEMOROSE_`` + the upper-cased name."""

    host: str = "127.0.0.1"
    port: int = 8000
    home: Path = Path("data")              # MEMOROSE_HOME
    node_id: str = ""                      # defaults to host:port
    raft_port: int = 0                     # defaults to port + 1000
    raft_bind: str = ""                    # host[:port] the Raft port binds; default host
    raft_max_frame_bytes: int = 64 * 1024 * 1024  # > 1.5 x max_body_bytes (a forwarded ingest)
    peers: tuple[str, ...] = ()            # other members' host:raft_port
    cluster_secret: str = ""               # generated and kept in home/ when empty
    api_keys: dict[str, str] = field(default_factory=dict)  # bootstrap tenant keys: key -> tenant
    admin_key: str = ""                    # admin routes, cluster status and sync; never data
    allow_open: bool = False               # no keys on a non-loopback bind: trusted networks only
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1000
    max_content_chars: int = 64 * 1024
    commit_timeout: float = 10.0
    min_free_bytes: int | None = None      # refuse writes below this; None: min(256 MiB, 1%)
    fault_file: Path | None = None         # test hook: while it exists, disk writes fail
    warm_store: bool = True                # read what a retrieve reads into memory at start
    # Admission (api/admission.py): past any of these a request is answered 503 overloaded.
    # Measured on 2 cores (bench/overload.py): at 32-64 requests in flight the handler threads
    # starved the event loop of the GIL and admitted requests waited 5-10 s at 16x the
    # sustainable load; at 16 p50 stayed under 0.5 s. A request holds about 3.5x its body
    # (parsed JSON, the msgpack command, its Raft entry) while it waits for its commit.
    max_inflight: int = 16                 # requests being served at once (/health exempt)
    max_inflight_bytes: int = 32 * 1024 * 1024  # request body bytes held by those requests
    max_pending_commits: int = 8           # writes waiting on the Raft log
    admission_wait: float = 0.1            # seconds a request may wait for room before the 503
    # Processes that read large batch bodies into their log command (api/batches.py), off the
    # event loop and the interpreter lock; None: one per core past the first, at most 4; 0: none.
    ingest_workers: int | None = None

    @classmethod
    def from_env(cls, check: bool = True, **overrides: object) -> Settings:
        """Settings from ``MEMOROSE_*`` and ``overrides`` (flags). Keys are parsed strictly;
        ``check`` also refuses an open node on a non-loopback bind (see ``validate``)."""
        settings = cls(
            host=_env("HOST", cls.host),
            port=int(_env("PORT", str(cls.port))),
            home=Path(_env("HOME", str(cls.home))),
            node_id=_env("NODE_ID", ""),
            raft_port=int(_env("RAFT_PORT", "0")),
            raft_bind=_env("RAFT_BIND", ""),
            raft_max_frame_bytes=int(_env("RAFT_MAX_FRAME_BYTES",
                                          str(cls.raft_max_frame_bytes))),
            peers=tuple(p.strip() for p in _env("PEERS", "").split(",") if p.strip()),
            cluster_secret=_env("CLUSTER_SECRET", ""),
            api_keys=parse_api_keys(_env("API_KEYS", "")),
            admin_key=_admin_key(_env("ADMIN_KEY", "")),
            allow_open=_env("ALLOW_OPEN", "") in ("1", "true", "yes"),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_batch=int(_env("MAX_BATCH", str(cls.max_batch))),
            max_content_chars=int(_env("MAX_CONTENT_CHARS", str(cls.max_content_chars))),
            commit_timeout=float(_env("COMMIT_TIMEOUT", str(cls.commit_timeout))),
            min_free_bytes=_optional_int(_env("MIN_FREE_BYTES", "")),
            fault_file=Path(_env("FAULT_FILE", "")) if _env("FAULT_FILE", "") else None,
            warm_store=_env("WARM_STORE", "1") not in ("0", "false", "no"),
            max_inflight=int(_env("MAX_INFLIGHT", str(cls.max_inflight))),
            max_inflight_bytes=int(_env("MAX_INFLIGHT_BYTES", str(cls.max_inflight_bytes))),
            max_pending_commits=int(_env("MAX_PENDING_COMMITS", str(cls.max_pending_commits))),
            admission_wait=float(_env("ADMISSION_WAIT", str(cls.admission_wait))),
            ingest_workers=_optional_int(_env("INGEST_WORKERS", "")),
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        if check:
            settings.validate()
        return settings

    @property
    def keys_configured(self) -> bool:
        """Any key in the environment. With none (and no key made at run time) the node is
        open: every request is served, as the ``default`` tenant."""
        return bool(self.api_keys or self.admin_key)

    def validate(self) -> None:
        """Refuse what would leave the API open to a network: a non-loopback bind with no key
        (unless ``MEMOROSE_ALLOW_OPEN=1``), or the admin key doubling as a tenant key."""
        if not self.keys_configured and not self.allow_open and not is_loopback(self.host):
            raise StartupError(
                f"refusing to serve {self.host}:{self.port} with no API keys: anyone who reaches "
                "the port could read and write every memory. Set MEMOROSE_API_KEYS "
                "(key:tenant,...) and/or MEMOROSE_ADMIN_KEY, bind to 127.0.0.1, or set "
                "MEMOROSE_ALLOW_OPEN=1 on a trusted network")
        if self.admin_key and self.admin_key in self.api_keys:
            raise StartupError("MEMOROSE_ADMIN_KEY is also in MEMOROSE_API_KEYS: the admin key "
                               "must not be a tenant key; use a different key for each")

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port or self.port + 1000}"

    @property
    def name(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    @property
    def raft_bind_address(self) -> str:
        """Where the Raft port listens: ``raft_bind`` (a bare host gets the Raft port), else the
        node's own host, so a node on 127.0.0.1 or a private address is not reachable on
        every interface."""
        if not self.raft_bind:
            return self.raft_address
        if ":" in self.raft_bind:
            return self.raft_bind
        return f"{self.raft_bind}:{self.raft_address.rsplit(':', 1)[1]}"

    def resolved_secret(self) -> str:
        """The peer password: configured, or generated once per data directory (mode 600).

        There is no default secret: pysyncobj unpickles whatever reaches an unprotected port.
        Raises ``WeakSecret`` for one shorter than ``MIN_SECRET_BYTES``.
        """
        if self.cluster_secret:
            return _strong(self.cluster_secret, f"{ENV_PREFIX}CLUSTER_SECRET",
                           f"Set it to the same random value on every member, e.g. "
                           f"the output of {MAKE_SECRET}")
        path = self.home / "cluster.secret"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            _write_private(path, secrets.token_urlsafe(32))
        return _strong(path.read_text().strip(), str(path),
                       f"Delete it to have one generated, or write a random one into it "
                       f"(e.g. {MAKE_SECRET} > {path}); every member needs the same secret")


def _strong(secret: str, where: str, fix: str) -> str:
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise WeakSecret(f"{where}: the cluster secret is {size} bytes; at least "
                         f"{MIN_SECRET_BYTES} are needed to protect the Raft port. {fix}")
    return secret


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` (mode 600) so it is whole or absent, even after a crash or power loss."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def secure_home(home: Path) -> None:
    """Keep a node's data to its own user: umask 077 for this process (RocksDB, Tantivy,
    LanceDB and the Raft journal create files with the process umask) and ``home`` mode 700.

    Call it before anything is created under ``home``. A ``home`` owned by another user is left
    as it is.
    """
    os.umask(0o077)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = home.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        home.chmod(stat.S_IMODE(info.st_mode) & 0o700)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _key_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    if any(ch.isspace() or ord(ch) < 32 for ch in key):
        return "contains whitespace or control characters"
    if len(key) < MIN_KEY_CHARS:
        return f"is shorter than {MIN_KEY_CHARS} characters"
    return None


def tenant_problem(tenant: str) -> str | None:
    """Why ``tenant`` cannot be a key's tenant, or None."""
    if not tenant.strip():
        return "is empty"
    if tenant != tenant.strip() or any(ord(ch) < 32 for ch in tenant) or len(tenant) > 256:
        return "has surrounding spaces, control characters or over 256 characters"
    if tenant.startswith("_"):
        return "starts with '_' (reserved for the node's own records)"
    return None


def parse_api_keys(raw: str) -> dict[str, str]:
    """``MEMOROSE_API_KEYS`` (``key:tenant,key2:tenant2``) -> {key: tenant}, strictly: a blank
    entry, an empty or short key or a missing tenant stops the node (no key is echoed)."""
    if raw == "":
        return {}
    keys: dict[str, str] = {}
    for n, entry in enumerate(raw.split(","), start=1):
        where = f"MEMOROSE_API_KEYS entry {n}"
        if not entry.strip():
            raise StartupError(f"{where} is blank (a stray comma?): write key:tenant,key2:tenant2")
        key, colon, tenant = entry.strip().partition(":")
        if not colon:
            raise StartupError(f"{where} has no tenant: write key:tenant")
        problem = _key_problem(key)
        if problem:
            raise StartupError(f"{where}: the key {problem}")
        problem = tenant_problem(tenant.strip())
        if problem:
            raise StartupError(f"{where}: the tenant {problem}")
        if key in keys:
            raise StartupError(f"{where}: the same key is listed twice")
        keys[key] = tenant.strip()
    return keys


def _admin_key(raw: str) -> str:
    if raw == "":
        return ""
    problem = _key_problem(raw.strip())
    if problem:
        raise StartupError(f"MEMOROSE_ADMIN_KEY {problem}")
    return raw.strip()
