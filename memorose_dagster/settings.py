"""Node settings, built from flags and the environment by ``Settings.from_env``."""

from __future__ import annotations

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


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


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
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> tenant; empty = open
    admin_key: str = ""                    # pipeline endpoints; empty = same as api access
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1000
    max_content_chars: int = 64 * 1024
    commit_timeout: float = 10.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        keys = {}
        for pair in filter(None, _env("API_KEYS", "").split(",")):
            key, _, tenant = pair.partition(":")
            keys[key.strip()] = tenant.strip() or "default"
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
            api_keys=keys,
            admin_key=_env("ADMIN_KEY", ""),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_batch=int(_env("MAX_BATCH", str(cls.max_batch))),
            max_content_chars=int(_env("MAX_CONTENT_CHARS", str(cls.max_content_chars))),
            commit_timeout=float(_env("COMMIT_TIMEOUT", str(cls.commit_timeout))),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})

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
