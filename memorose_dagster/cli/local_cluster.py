"""``memorose cluster up``: a Raft cluster of N replicas on one machine, as one command.

Replica i (1-based) serves HTTP on ``port + i - 1`` and Raft on ``raft_port + i - 1``, with its
own data directory ``DIR/node{i}`` and a config file there (``memorose.toml``: the same file runs
that replica on its own host with ``memorose serve --config``). All replicas share one secret,
generated once into ``DIR/cluster.secret`` (mode 600) and copied into every data directory,
which is where ``memorose serve`` looks for it. Ctrl-C or SIGTERM stops every replica; a replica
that dies is reported and the others keep serving.

``LocalCluster`` (replica processes started, signalled and awaited by pid) is also what the
cluster tests and ``bench/cluster.py`` drive.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from memorose_dagster.cli.admin_http import admin_headers
from memorose_dagster.cli.up import stop_requested


@dataclass(frozen=True)
class Replica:
    node_id: str
    host: str
    port: int
    raft_port: int
    home: Path

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"


def plan(nodes: int, host: str, port: int, raft_port: int, home: Path) -> list[Replica]:
    raft_port = raft_port or port + 1000
    return [Replica(f"node{i + 1}", host, port + i, raft_port + i, home / f"node{i + 1}")
            for i in range(nodes)]


def config_text(replica: Replica, peers: list[str]) -> str:
    """A ``memorose serve --config`` file (TOML) for one replica."""
    return "\n".join([
        f"host = {json.dumps(replica.host)}",
        f"port = {replica.port}",
        f"raft_port = {replica.raft_port}",
        f"data_dir = {json.dumps(str(replica.home.resolve()))}",
        f"node_id = {json.dumps(replica.node_id)}",
        f"peers = {json.dumps(peers)}",
        "",
    ])


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def shared_secret(home: Path, replicas: list[Replica]) -> str:
    """The cluster's peer secret: MEMOROSE_CLUSTER_SECRET, or generated once into ``home``;
    written into every replica's data directory."""
    secret = os.environ.get("MEMOROSE_CLUSTER_SECRET", "")
    main = home / "cluster.secret"
    if not secret:
        if not main.exists():
            _write_secret(main, secrets.token_urlsafe(32))
        secret = main.read_text().strip()
    for replica in replicas:
        path = replica.home / "cluster.secret"
        if path.exists() and path.read_text().strip() != secret:
            raise SystemExit(f"{path} holds a different cluster secret than {main}: a replica "
                             "with another secret cannot join; remove one of them")
        _write_secret(path, secret)
    return secret


class LocalCluster:
    """Replica processes on this machine; only processes started here are signalled."""

    def __init__(self, replicas: list[Replica], secret: str, env: dict[str, str] | None = None):
        self.replicas = list(replicas)
        self.env = {**os.environ, **(env or {}), "MEMOROSE_CLUSTER_SECRET": secret}
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def start(self, replica: Replica, peers: list[Replica] | None = None) -> None:
        """Start ``replica`` (again), with ``peers`` (default: every other replica)."""
        if replica not in self.replicas:
            self.replicas.append(replica)
        peers = [r for r in self.replicas if r != replica] if peers is None else peers
        replica.home.mkdir(parents=True, exist_ok=True)
        config = replica.home / "memorose.toml"
        config.write_text(config_text(replica, [p.raft_address for p in peers]))
        with replica.log_path.open("ab") as log:
            self.processes[replica.node_id] = subprocess.Popen(
                [sys.executable, "-m", "memorose_dagster.cli", "serve", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def start_all(self) -> None:
        for replica in self.replicas:  # all at once: a replica is healthy once a leader exists
            self.start(replica)

    def running(self, replica: Replica) -> bool:
        process = self.processes.get(replica.node_id)
        return process is not None and process.poll() is None

    def wait_healthy(self, replicas: list[Replica] | None = None, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(replicas or self.replicas)
        while waiting:
            for replica in waiting:
                if not self.running(replica):
                    raise RuntimeError(f"{replica.node_id} exited while starting; see "
                                       f"{replica.log_path}")
            waiting = [r for r in waiting if not _healthy(r)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(r.node_id for r in waiting)
                raise RuntimeError(f"{names} not healthy within {timeout:.0f}s")
            time.sleep(0.1)

    def kill(self, replica: Replica) -> None:
        """SIGKILL: no shutdown code runs."""
        process = self.processes[replica.node_id]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, replica: Replica, grace: float = 30.0) -> None:
        process = self.processes.get(replica.node_id)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill(replica)

    def stop_all(self) -> None:
        for replica in reversed(self.replicas):
            if self.running(replica):
                self.processes[replica.node_id].terminate()
        for replica in self.replicas:
            self.stop(replica)

    def status(self, replica: Replica) -> dict | None:
        try:
            response = httpx.get(replica.url + "/api/v1/cluster/status", timeout=5,
                                 headers=admin_headers())
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def leader(self, timeout: float = 30.0) -> Replica:
        """The replica that reports itself leader (waits for an election)."""
        deadline = time.monotonic() + timeout
        while True:
            for replica in self.replicas:
                if self.running(replica) and (self.status(replica) or {}).get("role") == "leader":
                    return replica
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader within {timeout:.0f}s")
            time.sleep(0.05)

    def digests(self, replicas: list[Replica] | None = None, timeout: float = 90.0) -> dict:
        """Wait until the replicas report one RocksDB digest at one applied index."""
        replicas = replicas or [r for r in self.replicas if self.running(r)]
        deadline, seen = time.monotonic() + timeout, {}
        while True:
            for replica in replicas:
                try:
                    response = httpx.get(replica.url + "/api/v1/admin/digest?timeout=5",
                                         timeout=60, headers=admin_headers())
                    if response.status_code == 200:
                        seen[replica.node_id] = response.json()
                except httpx.TransportError:
                    pass
            values = {(d["digest"], d["applied_index"]) for d in seen.values()}
            if len(seen) == len(replicas) and len(values) == 1:
                return seen
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas still differ after {timeout:.0f}s: {seen}")
            time.sleep(0.5)


def _healthy(replica: Replica) -> bool:
    try:
        return httpx.get(replica.url + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def cluster_up(nodes: int, host: str, port: int, raft_port: int, home: Path) -> int:
    if nodes < 1:
        raise SystemExit("--nodes must be at least 1 (3 or 5 for fault tolerance)")
    replicas = plan(nodes, host, port, raft_port, home)
    cluster = LocalCluster(replicas, shared_secret(home, replicas))
    stopping = stop_requested()
    cluster.start_all()
    try:
        cluster.wait_healthy()
        print(f"memorose cluster up: {nodes} replicas, data in {home}\n"
              + "\n".join(f"  {r.node_id}  {r.url}  raft {r.raft_address}  log {r.log_path}"
                          for r in replicas)
              + f"\nMEMOROSE_URL={','.join(cluster.urls)}", flush=True)
        reported: set[str] = set()
        while not stopping.is_set():
            for replica in replicas:
                if not cluster.running(replica) and replica.node_id not in reported:
                    reported.add(replica.node_id)
                    print(f"memorose cluster up: {replica.node_id} exited; the others keep "
                          "serving", file=sys.stderr, flush=True)
            if len(reported) == len(replicas):
                return 1
            time.sleep(0.2)
        return 0
    except RuntimeError as exc:
        print(f"memorose cluster up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        cluster.stop_all()
