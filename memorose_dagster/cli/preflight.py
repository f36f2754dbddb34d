"""Checks made before a command starts anything, so what stops it is said at once, in one line.

Without them a taken Raft port surfaced 36 s later as "no Raft leader after 30s" in a
traceback, an unwritable data directory as 31 lines of traceback, and ``memorose reindex`` on a
running node as a RocksDB LOCK error. Each check raises ``StartupError`` with what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from memorose_dagster.errors import StartupError


def port_free(host: str, port: int, what: str, flag: str) -> None:
    """``port`` can be bound on ``host`` (as uvicorn and pysyncobj will, SO_REUSEADDR on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"the {what} port {host}:{port} is taken (another memorose "
                                   f"node, or another program?): stop it or choose another "
                                   f"with {flag}") from exc
            raise StartupError(f"cannot bind the {what} port {host}:{port}: "
                               f"{exc.strerror or exc}") from exc


def data_dir_writable(home: Path) -> None:
    """``home`` is (or can be made) a directory this process can write in."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise StartupError(f"data directory {home}: a file is in the way ({exc.filename}); "
                           "choose another --data-dir or move the file") from exc
    except OSError as exc:
        raise StartupError(f"data directory {home}: cannot create it "
                           f"({exc.strerror or exc})") from exc
    probe = home / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data directory {home} is not writable ({exc.strerror or exc}): "
                           "fix its permissions or choose another --data-dir") from exc


def store_not_in_use(home: Path, action: str) -> None:
    """No other process holds the RocksDB store in ``home`` (RocksDB's lock on its LOCK file).

    Call it before this process opens the store: closing the probe's descriptor drops every
    lock this process holds on that file.
    """
    lock = home / "rocksdb" / "LOCK"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupError(f"data directory {home}: cannot open {lock} "
                           f"({exc.strerror or exc})") from exc
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise StartupError(f"data directory {home} is in use by a running memorose node: "
                               f"{action}") from exc
        raise
    finally:
        os.close(fd)


def node(host: str, port: int, raft_host: str, raft_port: int, home: Path) -> None:
    """Everything ``memorose serve`` needs before it loads a model or starts Raft."""
    data_dir_writable(home)
    store_not_in_use(home, "stop it first, or choose another --data-dir")
    port_free(host, port, "HTTP", "--port")
    port_free(raft_host, raft_port, "Raft", "--raft-port")
