"""One node as a subprocess on free 127.0.0.1 ports, for the benches: started, killed and
restarted by its pid only, with its memory read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NodeProcess:
    """``memorose serve`` on ``home`` with ``env`` added; the same ports on every restart."""

    def __init__(self, home: Path, env: dict[str, str] | None = None):
        self.home = home
        self.env = {**os.environ, **(env or {})}
        self.port, self.raft_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"{home.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> float:
        """Start and wait for /health 200; returns the seconds that took."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memorose_dagster.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--raft-port", str(self.raft_port),
                 "--data-dir", str(self.home)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited with {self.process.returncode} while starting: "
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node not healthy within {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.02)
        return time.perf_counter() - started

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the node process in MB: now, and its peak so far."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, kb = line.split()[:2]
                    values[name] = int(kb) / 1024
        return values["VmRSS:"], values["VmHWM:"]

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.01)
