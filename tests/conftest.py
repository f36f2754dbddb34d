"""Shared fixtures: real nodes (RocksDB, Tantivy, LanceDB, a Raft group) on loopback ports."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.cli.local_cluster import LocalCluster, Replica
from memorose_dagster.log.store import Store
from memorose_dagster.models.embedding import LocalMiniLM
from memorose_dagster.node.node import Node
from memorose_dagster.settings import Settings


class CountingStore(Store):
    """A real store that counts the keys each multi-get asks for, and can write a key outside
    the log (as an older version left it)."""

    def __init__(self, *args, **kwargs):
        self.asked: list[int] = []
        super().__init__(*args, **kwargs)

    def get_raw_many(self, wanted):
        self.asked.append(len(wanted))
        return super().get_raw_many(wanted)

    def put_raw(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float = 20.0,
               interval: float = 0.05, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def embedder() -> LocalMiniLM:
    return LocalMiniLM()


def make_settings(home: Path, **overrides: object) -> Settings:
    return Settings(home=home, port=free_port(), raft_port=free_port(), **overrides)


@pytest.fixture
def node(tmp_path: Path, embedder: LocalMiniLM) -> Iterator[Node]:
    n = Node(make_settings(tmp_path / "node"), embedder=embedder)
    n.wait_ready()
    yield n
    n.close()


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node=node)) as c:
        yield c


@dataclass
class LiveNode:
    url: str
    home: Path
    port: int
    raft_port: int
    process: subprocess.Popen
    log_path: Path

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def start_live_node(home: Path, port: int | None = None, raft_port: int | None = None,
                    env: dict[str, str] | None = None) -> LiveNode:
    port, raft_port = port or free_port(), raft_port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / f"{home.name}-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "memorose_dagster.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--raft-port", str(raft_port), "--data-dir", str(home)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"node exited: {log_path.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=60, interval=0.1, what="node /health")
    return LiveNode(url, home, port, raft_port, process, log_path)


@pytest.fixture
def live_node(tmp_path: Path) -> Iterator[LiveNode]:
    node = start_live_node(tmp_path / "live")
    yield node
    if node.process.poll() is None:
        node.process.terminate()
        try:
            node.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()


def replica(root: Path, name: str) -> Replica:
    """A replica of a local cluster on free loopback ports, its data in ``root / name``."""
    return Replica(name, "127.0.0.1", free_port(), free_port(), root / name)


@contextmanager
def three_replicas(root: Path, env: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    """A three-replica cluster as real processes on 127.0.0.1, healthy; stopped after."""
    local = LocalCluster([replica(root, f"n{i}") for i in (1, 2, 3)], secrets.token_urlsafe(24),
                         env=env)
    local.start_all()
    try:
        local.wait_healthy()
        yield local
    finally:
        local.stop_all()


def served(home: Path, embedder: LocalMiniLM, **settings: object) -> Iterator[tuple[Node, str]]:
    """A node on ``home`` (with ``settings``) behind uvicorn: yields it and its URL."""
    node = Node(make_settings(home, **settings), embedder=embedder)
    node.wait_ready()
    for url in serve_over_http(node):
        yield node, url
    node.close()


@dataclass
class ServedNode:
    node: Node
    url: str


def serve_over_http(node: Node) -> Iterator[str]:
    """``node`` behind uvicorn on a loopback port, in a thread; yields its URL, then stops."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(node=node), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn started")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def served_node(node: Node) -> Iterator[ServedNode]:
    """``node`` behind uvicorn on a loopback port, in a thread: real HTTP, inspectable node."""
    for url in serve_over_http(node):
        yield ServedNode(node, url)
