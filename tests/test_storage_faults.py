"""Storage faults: a full disk, an I/O error or a damaged file never silently stalls a node.

A write the disk refuses answers 507 ``storage_full`` at once, ``/health`` says degraded, the
log says so a few times (not once per 5 ms Raft tick), and the node applies again by itself when
space comes back, from the entry where it stopped. The fault is injected where a real ENOSPC is
raised (``MEMOROSE_FAULT_FILE``), and for real on a small tmpfs when this machine may mount one.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import free_port, make_settings, three_replicas, wait_until
from rocksdict import Options, Rdict
from starlette.testclient import TestClient

from api import create_app
from memorose_client import MemoroseClient
from memorose_dagster.cli import main
from memorose_dagster.cli.local_cluster import LocalCluster, Replica
from memorose_dagster.errors import StartupError, StorageFull
from memorose_dagster.ids import new_id
from memorose_dagster.models.embedding import LocalMiniLM
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event
from memorose_dagster.settings import Settings


def event(content: str, user: str = "u") -> dict:
    return {"user_id": user, "stream_id": "s", "content": content, "event_id": new_id()}


def storage_log_lines(text: str) -> list[str]:
    """Lines a storage fault puts in a node's log: ours, and any traceback pysyncobj prints."""
    return [line for line in text.splitlines()
            if "memorose.storage" in line or "Traceback" in line or "failed _onTick" in line]


@pytest.fixture
def faulty(tmp_path: Path, embedder: LocalMiniLM) -> Iterator[tuple[Node, TestClient]]:
    node = Node(make_settings(tmp_path / "node", fault_file=Path("FAULT"), min_free_bytes=0),
                embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        yield node, client
    node.close()


@pytest.mark.parametrize("source", ["rocksdb", ""], ids=["rocksdb", "rocksdb+journal"])
def test_disk_full_answers_507_at_once_and_writes_resume_without_restart(
        faulty: tuple[Node, TestClient], caplog: pytest.LogCaptureFixture, source: str):
    node, client = faulty
    caplog.set_level(logging.INFO)
    acked = []
    for i in range(3):
        body = event(f"before the disk filled {i}")
        assert client.post("/api/v1/events", json=body).status_code == 201
        acked.append(body["event_id"])
    fault = node.settings.home / "FAULT"
    fault.write_text(source)  # from now on every write to the disk fails with ENOSPC

    started = time.monotonic()
    in_flight = client.post("/api/v1/events", json=event("written as the disk filled"))
    to_error = time.monotonic() - started
    assert in_flight.status_code == 507, in_flight.text
    assert in_flight.json()["error"]["code"] == "storage_full"
    assert to_error < 2.0  # not the 10 s commit timeout
    started = time.monotonic()
    refused = client.post("/api/v1/events/batch", json={"events": [event("x"), event("y")]})
    assert refused.status_code == 507 and time.monotonic() - started < 0.5
    assert "No space left on device" in refused.json()["error"]["message"]
    assert client.post("/api/v1/admin/commit", json={"records": [{
        "kind": "tombstone", "tenant": "default", "target_kind": "event",
        "target_id": acked[0]}]}).status_code == 507  # the pipeline gets the same answer

    health = client.get("/health").json()
    assert health["status"] == "degraded" and "No space left" in health["reason"], health
    status = client.get("/api/v1/cluster/status").json()
    assert status["status"] == "degraded" and status["storage"]["reason"] == "storage_full"
    assert client.get(f"/api/v1/events/{acked[1]}").status_code == 200  # reads keep working
    hits = client.post("/api/v1/retrieve", json={"user_id": "u", "query": "disk filled",
                                                 "top_k": 5}).json()["results"]
    assert {h["id"] for h in hits} >= set(acked)
    # Retries go on, paced (not one per 5 ms tick), and stay out of the log.
    wait_until(lambda: client.get("/health").json().get("storage", {}).get("attempts", 0) >= 4,
               10, what="paced retries")

    fault.unlink()
    freed = time.monotonic()
    after = event("after space came back")
    wait_until(lambda: client.post("/api/v1/events", json=after).status_code == 201, 10,
               what="a write accepted again")
    to_recover = time.monotonic() - freed
    acked.append(after["event_id"])
    assert client.get("/health").json()["status"] == "ok"
    stored = {e["event_id"]: e["content"] for e in node.user_records("event", "default", "u")}
    assert set(acked) <= set(stored)  # nothing acknowledged lost
    # The entry in flight when the disk filled was committed (RocksDB case) and is applied now,
    # once; when the journal refused it, it never entered the log.
    in_log = "written as the disk filled" in stored.values()
    assert in_log == (source == "rocksdb")
    assert node.store.applied_index == node.log.raftLastApplied
    wait_until(lambda: node.indexer.indexed == node.store.applied_index, 10, what="indexed")
    lines = storage_log_lines(caplog.text)
    print(f"\nfault in {source or 'rocksdb+journal'}: error after {to_error * 1000:.0f} ms, "
          f"writes again {to_recover:.2f} s after space came back, {len(lines)} log lines")
    assert 2 <= len(lines) <= 4, lines
    assert not [r for r in caplog.records if r.name.startswith("pysyncobj")]


def test_free_space_floor_refuses_writes_early_and_reads_keep_working(
        tmp_path: Path, embedder: LocalMiniLM, caplog: pytest.LogCaptureFixture):
    home = tmp_path / "node"
    node = Node(make_settings(home, min_free_bytes=0), embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        stored = event("stored while there was room")
        assert client.post("/api/v1/events", json=stored).status_code == 201
    node.close()
    caplog.set_level(logging.INFO)
    node = Node(make_settings(home, min_free_bytes=2**62), embedder=embedder)  # above any disk
    try:
        node.wait_ready()
        with TestClient(create_app(node=node)) as client:
            applied = node.store.applied_index
            started = time.monotonic()
            refused = client.post("/api/v1/events", json=event("no room"))
            assert refused.status_code == 507 and time.monotonic() - started < 0.5
            error = refused.json()["error"]
            assert error["code"] == "storage_full" and error["min_free_bytes"] == 2**62
            assert "MEMOROSE_MIN_FREE_BYTES" in error["message"]
            assert client.get(f"/api/v1/events/{stored['event_id']}").status_code == 200
            assert client.post("/api/v1/retrieve", json={"user_id": "u", "query": "room"}
                               ).json()["results"][0]["id"] == stored["event_id"]
            health = client.get("/health").json()
            assert health["status"] == "degraded" and "below the floor" in health["reason"]
            for _ in range(20):
                client.post("/api/v1/events", json=event("no room"))
        node.record_access("default", [{"id": "m1", "layer": "L1", "user_id": "u"}])
        assert node.access.flush() is None  # refused too: the count waits for the next flush
        assert node.store.applied_index == applied  # nothing was proposed
    finally:
        node.close()
    lines = storage_log_lines(caplog.text)
    assert len(lines) == 1 and "below the floor" in lines[0], lines


def test_close_does_not_raise_while_the_store_is_in_error_state(tmp_path, embedder):
    node = Node(make_settings(tmp_path / "node", fault_file=Path("FAULT")), embedder=embedder)
    node.wait_ready()
    (node.settings.home / "FAULT").write_text("rocksdb")
    with pytest.raises(StorageFull):
        node.ingest([Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                           content="x", timestamp=1.0)])
    assert node.health()["status"] == "degraded"
    node.close()


# A real full disk: a tmpfs mounted under the test's directory (root only).

def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    if not mount_tmpfs(mount, "64m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-fault tests cover "
                    "the same code paths")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def fill(disk: Path, leave: int = 0) -> Path:
    """A file that takes all the free space but ``leave`` bytes. Unbuffered: a write the disk
    refuses part of leaves nothing behind for the close to fail on (the node writes beside it,
    so the space can run out before ``leave``)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "ab", buffering=0) as f:
        chunk = b"\0" * 2**20
        left = free - leave
        try:
            while left > 0:
                left -= f.write(chunk[:left])
                f.flush()
        except OSError:
            pass
    return filler


JOURNAL_FILL = """
import sys
from pathlib import Path
from pysyncobj.journal import FileJournal
from memorose_dagster.log.faults import FaultFile, StorageFault
from memorose_dagster.log.journal import GuardedJournal
path = sys.argv[1]
journal = GuardedJournal.guard(FileJournal(path), FaultFile(None))
added = 0
try:
    for i in range(1_000_000):
        journal.add(b"x" * 1000, i + 2, 1)
        added += 1
except StorageFault as fault:
    print("refused", added, fault.full, flush=True)
journal._destroy()
again = FileJournal(path)
assert len(again) == added, (len(again), added)
assert [again[i][1] for i in range(len(again))] == list(range(2, added + 2))
print("consistent", len(again))
"""


def test_journal_on_a_full_disk_refuses_the_write_instead_of_dying(small_disk: Path):
    fill(small_disk, leave=2 * 2**20)
    done = subprocess.run([sys.executable, "-c", JOURNAL_FILL, str(small_disk / "journal")],
                          capture_output=True, text=True, timeout=60)
    # pysyncobj's own journal dies here with SIGBUS (-7): its mmap grows into pages with no
    # blocks behind them.
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "refused" in done.stdout and "True" in done.stdout and "consistent" in done.stdout


def serve_on(home: Path, log_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``memorose serve`` on ``home``, logging to ``log_path`` (off the disk that fills)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "memorose_dagster.cli", "serve", "--port", str(port),
         "--raft-port", str(free_port()), "--data-dir", str(home)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 60, 0.1, what="node /health")
    return process, url


def test_a_node_on_a_disk_that_fills_up_recovers_when_space_is_freed(small_disk: Path,
                                                                     tmp_path: Path):
    log_path = tmp_path / "node.log"
    process, url = serve_on(small_disk / "node", log_path, {"MEMOROSE_MIN_FREE_BYTES": "0"})
    acked: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for b in range(5):
                batch = [event(f"batch {b} fact {i} " + "padding " * 40) for i in range(200)]
                assert http.post("/api/v1/events/batch", json={"events": batch}).status_code == 201
                acked += [e["event_id"] for e in batch]
            filler = fill(small_disk)
            started = time.monotonic()
            answers = []
            for b in range(20):  # until the disk refuses one: at once, and with the right code
                batch = [event(f"late batch {b} fact {i} " + "padding " * 40) for i in range(200)]
                answer = http.post("/api/v1/events/batch", json={"events": batch})
                answers.append(answer.status_code)
                if answer.status_code == 201:
                    acked += [e["event_id"] for e in batch]
                    continue
                break
            to_error = time.monotonic() - started
            assert answers[-1] == 507, (answers, answer.text)
            assert answer.json()["error"]["code"] == "storage_full"
            assert "No space left on device" in answer.json()["error"]["message"]
            started = time.monotonic()
            assert http.post("/api/v1/events", json=event("x")).status_code == 507
            assert time.monotonic() - started < 1.0
            # A probe of a few bytes may still fit where a batch does not: the node may look
            # healthy between two refused writes, but every write on the full disk is refused.
            wait_until(lambda: http.get("/health").json().get("storage", {}).get("attempts", 0)
                       >= 1, 10, what="degraded while full")
            assert http.post("/api/v1/events/batch", json={"events": [
                event(f"refused {i} " + "padding " * 40) for i in range(200)]}).status_code == 507
            assert http.get(f"/api/v1/events/{acked[0]}").status_code == 200  # reads work

            filler.unlink()
            freed = time.monotonic()
            after = event("written after space was freed")
            wait_until(lambda: http.post("/api/v1/events", json=after).status_code == 201, 15,
                       0.1, what="a write accepted after space was freed")
            to_recover = time.monotonic() - freed
            acked.append(after["event_id"])
            assert http.get("/health").json()["status"] == "ok"
            records = http.get("/api/v1/admin/records", params={"kind": "event", "user_id": "u"}
                               ).json()["records"]
            assert set(acked) <= {r["event_id"] for r in records}
            filler = fill(small_disk)  # full again, and then stopped
            assert http.post("/api/v1/events/batch", json={"events": [
                event("z " * 2000) for _ in range(300)]}).status_code == 507
        process.terminate()  # uvicorn re-raises SIGTERM once it has shut down
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), log_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    text = log_path.read_text()
    lines = storage_log_lines(text)
    print(f"\nreal ENOSPC: 507 after {to_error:.2f} s ({len(answers)} batches), writes again "
          f"{to_recover:.2f} s after space was freed, {len(lines)} storage log lines")
    assert "Application shutdown complete" in text and "shutdown failed" not in text
    assert len(lines) <= 8, lines


# Damaged files at start.

@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, embedder: LocalMiniLM) -> Settings:
    """A stopped node's settings; its data directory holds events in RocksDB (flushed to an
    .sst), its Raft journal and a snapshot."""
    home = tmp_path_factory.mktemp("stopped") / "node"
    settings = make_settings(home)
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    for i in range(3):
        kept = Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                     content=f"kept fact number {i} about walruses", timestamp=1.0)
        node.ingest([kept])
    values = embedder.embed([kept.content])[0].astype("<f4").tobytes()
    node.commit_derived([{"kind": "vector", "tenant": "default", "record_id": kept.event_id,
                          "layer": "L0", "model": embedder.name,
                          "values": base64.b64encode(values).decode()}])
    assert node.snapshot(30)["written"]
    node.ingest([Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                       content="after the snapshot, walruses", timestamp=1.0)])
    node.close()
    db = Rdict(str(home / "rocksdb"), Options(raw_mode=True))
    db.flush()
    db.close()
    assert list((home / "rocksdb").glob("*.sst"))
    return settings


def copy_of(stopped: Settings, tmp_path: Path) -> Settings:
    """The stopped node again (same addresses: its Raft membership names them), on a copy."""
    shutil.copytree(stopped.home, tmp_path / "node")
    return replace(stopped, home=tmp_path / "node")


def damage_journal(home: Path) -> str:
    journal = home / "raft" / "journal"
    data = journal.read_bytes()
    end = int.from_bytes(data[36:40], "little")
    journal.write_bytes(data[:end - 10])
    return str(journal)


def damage_sst(home: Path) -> str:
    sst = sorted((home / "rocksdb").glob("*.sst"))[0]
    sst.write_bytes(os.urandom(sst.stat().st_size))
    return "rocksdb"


def damage_manifest(home: Path) -> str:
    manifest = sorted((home / "rocksdb").glob("MANIFEST-*"))[-1]
    manifest.write_bytes(b"garbage" * 100)
    return "rocksdb"


def remove_current(home: Path) -> str:
    (home / "rocksdb" / "CURRENT").unlink()
    return "CURRENT"


def damage_snapshot(home: Path) -> str:
    (home / "raft" / "snapshot.tar").write_bytes(os.urandom(4096))
    return "snapshot.tar"


def damage_meta(home: Path) -> str:
    (home / "raft" / "journal.meta").write_bytes(b"\x80\x04garbage")
    return "journal.meta"


def damage_tantivy(home: Path) -> str:
    (home / "tantivy" / "meta.json").write_text("{garbage")
    return "memorose reindex --data-dir"


def other_version(home: Path) -> str:
    (home / "FORMAT").write_text("memorose data format 99\n")
    return "FORMAT"


@pytest.mark.parametrize("damage", [damage_journal, damage_sst, damage_manifest, remove_current,
                                    damage_snapshot, damage_meta, damage_tantivy,
                                    other_version],
                         ids=lambda f: f.__name__)
def test_a_damaged_data_directory_stops_the_start_with_a_clear_error(
        stopped: Settings, tmp_path: Path, embedder: LocalMiniLM, damage):
    settings = copy_of(stopped, tmp_path)
    home = settings.home
    named = damage(home)
    with pytest.raises(StartupError) as raised:
        node = Node(settings, embedder=embedder)
        node.close()  # started anyway: the assertion below fails
    message = raised.value.message
    assert named in message and "\n" not in message, message
    assert "re-seed" in message or "another --data-dir" in message or "reindex" in message
    assert (home / "FORMAT").exists()
    if damage is damage_tantivy:  # what the message says to do works
        assert main(["reindex", "--data-dir", str(home)]) == 0
        node = Node(settings, embedder=embedder)
        node.wait_ready()
        assert len(node.retrieve("default", "u", "walruses", 10)) == 4
        node.close()


@pytest.mark.parametrize("index", ["tantivy", "lancedb", "both"])
def test_a_missing_index_directory_is_rebuilt_from_rocksdb(
        stopped: Settings, tmp_path: Path, embedder: LocalMiniLM, index: str):
    settings = copy_of(stopped, tmp_path)
    for name in (["tantivy", "lancedb"] if index == "both" else [index]):
        shutil.rmtree(settings.home / name)
    node = Node(settings, embedder=embedder)
    try:
        node.wait_ready()
        wait_until(lambda: node.indexer.indexed == node.store.applied_index, 20, what="indexed")
        hits = node.retrieve("default", "u", "walruses", 10)
        assert len({h["id"] for h in hits if h["layer"] == "L0"}) == 4
        assert node.indexer.vectors.count() == 1
    finally:
        node.close()


# Three replicas: one member's disk fails, then the leader's; and a paused leader.

@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with three_replicas(tmp_path_factory.mktemp("cluster"),
                        env={"MEMOROSE_FAULT_FILE": "FAULT",
                             "MEMOROSE_MIN_FREE_BYTES": "0"}) as local:
        yield local


class Writer:
    """A thread ingesting small batches, trying the next node on any refusal (a 507 from a
    member whose disk failed, a 503 during an election); records what was acknowledged."""

    def __init__(self, urls: list[str]):
        self.acked: list[str] = []
        self.ack_times: list[float] = []
        self._urls = urls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            for url in self._urls:
                batch = [event(f"replicated fact {n} {i}", "c") for i in range(10)]
                try:
                    answer = httpx.post(url + "/api/v1/events/batch", json={"events": batch},
                                        timeout=30)
                except httpx.TransportError:
                    continue
                if answer.status_code == 201:
                    self.acked += [e["event_id"] for e in batch]
                    self.ack_times.append(time.monotonic())
                    break
            else:
                time.sleep(0.05)

    def count(self) -> int:
        return len(self.acked)


def role(cluster: LocalCluster, member: Replica) -> str | None:
    return (cluster.status(member) or {}).get("role")


def event_ids_on(member: Replica, user: str) -> set[str]:
    answer = httpx.get(member.url + "/api/v1/admin/records",
                       params={"kind": "event", "user_id": user}, timeout=60)
    return {r["event_id"] for r in answer.json()["records"]}


def test_a_follower_then_the_leader_lose_their_disk_and_catch_up(cluster: LocalCluster):
    leader = cluster.leader()
    follower = next(m for m in cluster.replicas if m != leader)
    with Writer([leader.url] + [m.url for m in cluster.replicas if m != leader]) as writer:
        wait_until(lambda: writer.count() >= 50, 30, what="writes under way")
        (follower.home / "FAULT").write_text("")
        wait_until(lambda: (cluster.status(follower) or {}).get("status") == "degraded", 10,
                   what="the follower degraded")
        health = httpx.get(follower.url + "/health", timeout=5).json()
        assert "No space left" in health["reason"]
        answer = httpx.post(follower.url + "/api/v1/events", json=event("x", "c"), timeout=5)
        assert answer.status_code == 507
        during = writer.count()
        wait_until(lambda: writer.count() >= during + 100, 30, what="the leader committing")
        assert role(cluster, leader) == "leader"
        (follower.home / "FAULT").unlink()
        wait_until(lambda: (cluster.status(follower) or {}).get("status") == "ok", 10,
                   what="the follower healthy again")

        (leader.home / "FAULT").write_text("")
        failed_at = time.monotonic()
        new_leader = wait_until(lambda: next(
            (m for m in cluster.replicas if m != leader and role(cluster, m) == "leader"), None),
            15, what="another leader")
        first = wait_until(lambda: next((t for t in writer.ack_times if t > failed_at), None),
                           15, what="writes through the new leader")
        assert role(cluster, leader) == "follower"
        assert cluster.status(leader)["status"] == "degraded"
        (leader.home / "FAULT").unlink()
        wait_until(lambda: (cluster.status(leader) or {}).get("status") == "ok", 10,
                   what="the old leader healthy again")
        resumed = writer.count()
        wait_until(lambda: writer.count() >= resumed + 50, 30, what="more writes")
    print(f"\nleader disk failed: new leader {new_leader.node_id}, first write acknowledged "
          f"{first - failed_at:.2f} s later")
    digests = cluster.digests()
    assert len({d["digest"] for d in digests.values()}) == 1
    for member in (follower, leader):
        assert set(writer.acked) <= event_ids_on(member, "c")
        lines = storage_log_lines(member.log_path.read_text())
        assert len(lines) <= 4, lines


def test_a_paused_leader_comes_back_as_a_follower_and_loses_nothing(cluster: LocalCluster):
    leader = cluster.leader()
    others = [m for m in cluster.replicas if m != leader]
    pid = cluster.processes[leader.node_id].pid
    with MemoroseClient([m.url for m in others] + [leader.url], timeout=30) as client:
        ids = client.ingest_batch([event(f"before the pause {i}", "p") for i in range(100)])
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: any(role(cluster, m) == "leader" for m in others), 20,
                       what="a leader among the others")
            ids += client.ingest_batch([event(f"while paused {i}", "p") for i in range(100)])
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        ids += client.ingest_batch([event(f"after the pause {i}", "p") for i in range(100)])
        first_ack = time.monotonic() - resumed
        ids += client.ingest_batch([event(f"later {i}", "p") for i in range(100)])
    wait_until(lambda: role(cluster, leader) == "follower", 15, what="the old leader following")
    digests = cluster.digests()
    assert len({d["digest"] for d in digests.values()}) == 1
    for member in cluster.replicas:
        assert event_ids_on(member, "p") == set(ids) and len(ids) == 400
    print(f"\npaused leader: first write after SIGCONT acknowledged in {first_ack:.2f} s")
