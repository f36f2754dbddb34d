"""Node settings, built from flags and the environment by ``Settings.from_env``."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "MEMOROSE_"


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
    peers: tuple[str, ...] = ()            # other members' host:raft_port
    cluster_secret: str = ""               # generated and kept in home/ when empty
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> tenant; empty = open
    admin_key: str = ""                    # pipeline endpoints; empty = same as api access
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1000
    max_content_chars: int = 64 * 1024
    commit_timeout: float = 10.0
    # Admission (api/admission.py): past any of these a request is answered 503 overloaded.
    # Measured on 2 cores (bench/overload.py): at 32-64 requests in flight the handler threads
    # starved the event loop of the GIL and admitted requests waited 5-10 s at 16x the
    # sustainable load; at 16 p50 stayed under 0.5 s. A request holds about 3.5x its body
    # (parsed JSON, the msgpack command, its Raft entry) while it waits for its commit.
    max_inflight: int = 16                 # requests being served at once (/health exempt)
    max_inflight_bytes: int = 32 * 1024 * 1024  # request body bytes held by those requests
    max_pending_commits: int = 8           # writes waiting on the Raft log
    admission_wait: float = 0.1            # seconds a request may wait for room before the 503

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
            peers=tuple(p.strip() for p in _env("PEERS", "").split(",") if p.strip()),
            cluster_secret=_env("CLUSTER_SECRET", ""),
            api_keys=keys,
            admin_key=_env("ADMIN_KEY", ""),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(cls.max_body_bytes))),
            max_batch=int(_env("MAX_BATCH", str(cls.max_batch))),
            max_content_chars=int(_env("MAX_CONTENT_CHARS", str(cls.max_content_chars))),
            commit_timeout=float(_env("COMMIT_TIMEOUT", str(cls.commit_timeout))),
            max_inflight=int(_env("MAX_INFLIGHT", str(cls.max_inflight))),
            max_inflight_bytes=int(_env("MAX_INFLIGHT_BYTES", str(cls.max_inflight_bytes))),
            max_pending_commits=int(_env("MAX_PENDING_COMMITS", str(cls.max_pending_commits))),
            admission_wait=float(_env("ADMISSION_WAIT", str(cls.admission_wait))),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port or self.port + 1000}"

    @property
    def name(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    def resolved_secret(self) -> str:
        """The peer password: configured, or generated once per data directory (mode 600).

        There is no default secret: pysyncobj unpickles whatever reaches an unprotected port.
        """
        if self.cluster_secret:
            return self.cluster_secret
        path = self.home / "cluster.secret"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return path.read_text().strip()
