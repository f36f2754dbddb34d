"""The Raft port and the data directory against other users and outsiders: no weak cluster
secret, the port bound to the node's host, oversized frames dropped before they are buffered,
and data files readable by the node's own user only."""

from __future__ import annotations

import os
import pickle
import secrets
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from conftest import free_port, make_settings, wait_until
from cryptography.fernet import Fernet
from pysyncobj.encryptor import getEncryptor

from memorose_dagster.errors import MemoroseError
from memorose_dagster.ids import new_id
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event
from memorose_dagster.settings import Settings


def event(content: str) -> Event:
    return Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                 content=content, timestamp=1.0)


class CreatesFile:
    """Unpickling this creates ``path``: proof that a payload ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


# -- the cluster secret ------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["", "\n", "   \n", "x" * 31 + "\n"])
def test_a_short_secret_file_is_refused(tmp_path: Path, content: str):
    home = tmp_path / "node"
    home.mkdir()
    (home / "cluster.secret").write_text(content)
    with pytest.raises(MemoroseError, match=r"cluster\.secret: the cluster secret is \d+ bytes"):
        Settings(home=home).resolved_secret()


def test_a_short_secret_in_the_environment_is_refused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEMOROSE_CLUSTER_SECRET", "x" * 31)
    with pytest.raises(MemoroseError, match="MEMOROSE_CLUSTER_SECRET: .* 31 bytes"):
        Settings.from_env(home=tmp_path).resolved_secret()
    monkeypatch.setenv("MEMOROSE_CLUSTER_SECRET", "x" * 32)
    assert Settings.from_env(home=tmp_path).resolved_secret() == "x" * 32


def test_a_node_with_an_empty_secret_file_does_not_start(tmp_path: Path, embedder):
    settings = make_settings(tmp_path / "node")
    settings.home.mkdir()
    (settings.home / "cluster.secret").write_text("\n")
    try:
        node = Node(settings, embedder=embedder)
    except MemoroseError as exc:
        assert str(settings.home / "cluster.secret") in str(exc)
    else:  # what the empty secret allowed: a frame under the empty password runs code
        marker = tmp_path / "pwned"
        data = getEncryptor("").encrypt(zlib.compress(pickle.dumps(CreatesFile(marker)), 3))
        try:
            with socket.create_connection(("127.0.0.1", settings.raft_port), timeout=5) as sock:
                sock.sendall(struct.pack("i", len(data)) + data)
                wait_until(marker.exists, timeout=5, what="the outsider's payload to run")
        finally:
            node.close()
        pytest.fail("a node started with an empty cluster secret, and an outsider's pickle ran")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", settings.raft_port), timeout=5).close()


def test_serve_says_in_one_line_why_it_refuses_a_weak_secret(tmp_path: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "memorose_dagster.cli", "serve", "--host", "127.0.0.1",
         "--port", str(free_port()), "--raft-port", str(free_port()),
         "--data-dir", str(tmp_path / "node")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MEMOROSE_CLUSTER_SECRET": "changeme"})
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 2
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1].startswith(
        "memorose: MEMOROSE_CLUSTER_SECRET: the cluster secret is 8 bytes")


def test_a_generated_secret_is_long_private_and_kept(tmp_path: Path):
    settings = Settings(home=tmp_path / "node")
    secret = settings.resolved_secret()
    path = settings.home / "cluster.secret"
    assert len(secret.encode()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in settings.home.iterdir()] == ["cluster.secret"]  # no temp file left
    assert settings.resolved_secret() == secret == path.read_text()


# -- where the Raft port listens ---------------------------------------------------------------

def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_the_raft_port_listens_on_the_node_host_only(node: Node):
    port = int(node.settings.raft_address.rsplit(":", 1)[1])
    assert reachable("127.0.0.1", port)
    assert not reachable("127.0.0.2", port)  # another address of this machine


def test_raft_bind_widens_the_listen_address(tmp_path: Path, embedder,
                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEMOROSE_RAFT_BIND", "0.0.0.0")
    base = make_settings(tmp_path / "node")
    settings = Settings.from_env(home=base.home, port=base.port, raft_port=base.raft_port)
    assert settings.raft_bind_address == f"0.0.0.0:{base.raft_port}"
    node = Node(settings, embedder=embedder)
    try:
        node.wait_ready()
        assert reachable("127.0.0.2", base.raft_port)
        assert node.ingest([event("bound to every interface")]) > 0
    finally:
        node.close()


# -- frame limits ------------------------------------------------------------------------------

class Flood(threading.Thread):
    """An outsider on the Raft port: an HTTP request line (read as a 542 MB frame length), then
    zeros for up to ``total`` bytes or ``seconds``, whichever ends first."""

    def __init__(self, port: int, total: int = 64 * 2**20, seconds: float = 8.0):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=seconds)
        self.total, self.seconds = total, seconds
        self.sent = 0
        self.closed_by_peer = threading.Event()
        self.started_sending = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        chunk = b"\x00" * 2**20
        try:
            self.sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            self.started_sending.set()
            while self.sent < self.total and time.monotonic() < deadline:
                self.sent += self.sock.send(chunk)
            if self.sock.recv(1) == b"":
                self.closed_by_peer.set()
        except (BrokenPipeError, ConnectionResetError):
            self.closed_by_peer.set()
        except TimeoutError:
            pass
        finally:
            self.started_sending.set()


def test_an_outsiders_huge_frame_is_dropped_and_commits_go_on(node: Node):
    port = int(node.settings.raft_address.rsplit(":", 1)[1])
    flood = Flood(port)
    flood.start()
    try:
        assert flood.started_sending.wait(10)
        started = time.monotonic()
        node.ingest([event("written during a flood")])
        took = time.monotonic() - started
        assert took < 2.0, f"an ingest took {took:.1f}s while an outsider streamed"
        assert flood.closed_by_peer.wait(10), "the Raft port kept reading an outsider's frame"
        # What the node could have buffered is at most what got through before it hung up:
        # socket buffers, not the 64 MB on offer.
        assert flood.sent < 16 * 2**20, flood.sent
    finally:
        flood.sock.close()
        flood.join(15)
    assert node.ingest([event("written after")]) > 0


def incompressible(size: int) -> str:
    return secrets.token_hex(size // 2)


class Member:
    """A peer that knows the secret, on a blocking socket: pysyncobj's key exchange, then
    requests. (``members.peer_call`` stalls on a request larger than its send buffer.)"""

    def __init__(self, address: str, encryptor: Fernet):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.encryptor = encryptor
        self.key = os.urandom(32)
        self._send(self.key)
        self.their_key = self._receive()

    def call(self, command: list) -> object:
        self._send((self.their_key, command))
        return self._receive()

    def _send(self, message: object) -> None:
        data = self.encryptor.encrypt(zlib.compress(pickle.dumps(message), 3))
        self.sock.sendall(struct.pack("i", len(data)) + data)

    def _receive(self) -> object:
        (size,) = struct.unpack("i", self._exactly(4))
        key, message = pickle.loads(zlib.decompress(self.encryptor.decrypt(self._exactly(size))))
        assert key == self.key
        return message

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = self.sock.recv(size - len(data))
            if not more:
                raise ConnectionError("closed by the node")
            data += more
        return data


def test_a_peer_with_the_secret_may_send_frames_above_the_first_frame_cap(node: Node):
    # 300 kB of hex compresses to ~150 kB; the frame is ~200 kB, over the 64 KiB before-login cap.
    member = Member(node.settings.raft_address, node.log.encryptor)
    with member.sock:
        assert member.call(["status", incompressible(300_000)])["state"] == 2


def test_a_frame_above_the_limit_is_dropped_even_from_a_peer_with_the_secret(tmp_path: Path,
                                                                            embedder):
    node = Node(make_settings(tmp_path / "node", raft_max_frame_bytes=256 * 1024),
                embedder=embedder)
    try:
        node.wait_ready()
        address = node.settings.raft_address
        member = Member(address, node.log.encryptor)
        with member.sock, pytest.raises(OSError):  # ConnectionError or a reset
            member.call(["status", incompressible(1_000_000)])
        member = Member(address, node.log.encryptor)
        with member.sock:
            assert member.call(["status", incompressible(100_000)])["state"] == 2
        assert node.ingest([event("still committing")]) > 0
    finally:
        node.close()


# -- the data directory ------------------------------------------------------------------------

def test_data_files_are_private_to_the_node_user_under_umask_022(tmp_path: Path, embedder):
    previous = os.umask(0o022)
    try:
        home = tmp_path / "node"
        home.mkdir()
        home.chmod(0o755)  # an existing data directory, as an earlier version left it
        settings = make_settings(home)
        node = Node(settings, embedder=embedder)
        try:
            node.wait_ready()
            node.ingest([event("a private fact")])
            wait_until(lambda: node.indexer.indexed >= node.store.applied_index, what="indexed")
            node.log.forceLogCompaction()
            wait_until((home / "raft" / "snapshot.tar").exists, what="snapshot written")
        finally:
            node.close()
    finally:
        os.umask(previous)
    exposed = []
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.is_symlink():
            exposed.append(f"{oct(mode)} {path.relative_to(tmp_path)}")
    assert not exposed, "readable by other users:\n" + "\n".join(exposed)
    assert len(list(home.rglob("*"))) > 10  # the walk did see RocksDB, Tantivy, LanceDB, raft
