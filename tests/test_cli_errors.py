"""What stops a command from starting is said at once, in one line a person can act on:
``memorose: <what and what to do>`` on stderr, exit code 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from conftest import LiveNode, free_port

PROMPT = 10.0  # seconds; a start that fails must fail well within this


@contextmanager
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def memorose(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "memorose_dagster.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def assert_one_line(done: subprocess.CompletedProcess, seconds: float, *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("memorose: ")]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert seconds < PROMPT, f"took {seconds:.1f}s"


def serve_args(home: Path, port: int | None = None, raft_port: int | None = None) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port or free_port()),
            "--raft-port", str(raft_port or free_port()), "--data-dir", str(home)]


def test_a_taken_raft_port_is_named_at_once(tmp_path):
    with taken_port() as raft:
        done, seconds = memorose("serve", *serve_args(tmp_path / "d", raft_port=raft),
                                 cwd=tmp_path)
    assert_one_line(done, seconds, f"Raft port 127.0.0.1:{raft} is taken", "--raft-port")


def test_a_taken_http_port_is_named_at_once(tmp_path):
    with taken_port() as port:
        done, seconds = memorose("serve", *serve_args(tmp_path / "d", port=port), cwd=tmp_path)
    assert_one_line(done, seconds, f"HTTP port 127.0.0.1:{port} is taken", "--port")


def test_a_file_in_the_way_of_the_data_directory(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    for home in (tmp_path / "afile", tmp_path / "afile" / "data"):
        done, seconds = memorose("serve", *serve_args(home), cwd=tmp_path)
        assert_one_line(done, seconds, f"data directory {home}", "a file is in the way")


def test_reindex_and_a_second_node_on_a_running_nodes_data(tmp_path, live_node: LiveNode):
    done, seconds = memorose("reindex", "--data-dir", str(live_node.home), cwd=tmp_path)
    assert_one_line(done, seconds, "in use by a running memorose node", "stop the node first")
    done, seconds = memorose("serve", *serve_args(live_node.home), cwd=tmp_path)
    assert_one_line(done, seconds, "in use by a running memorose node")
    assert httpx.get(live_node.url + "/health", timeout=5).status_code == 200  # untouched


def test_reindex_of_a_directory_without_data(tmp_path):
    done, seconds = memorose("reindex", "--data-dir", str(tmp_path / "empty"), cwd=tmp_path)
    assert_one_line(done, seconds, "holds no memorose data")


def test_up_with_the_dagster_port_taken_starts_nothing(tmp_path):
    port, raft, home = free_port(), free_port(), tmp_path / "data"
    with taken_port() as dagster:
        done, seconds = memorose("up", *serve_args(home, port, raft), "--dagster-port",
                                 str(dagster), cwd=tmp_path)
    assert_one_line(done, seconds, f"Dagster UI port 127.0.0.1:{dagster} is taken",
                    "--dagster-port")
    assert "memorose up:" not in done.stdout  # no banner
    assert not (home / "rocksdb").exists() and not (home / "dagster").exists()
    for free in (port, raft):  # no node was left behind holding its ports
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", free))
