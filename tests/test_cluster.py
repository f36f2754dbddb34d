"""A three-replica Raft cluster as real processes on 127.0.0.1: failover under load loses no
acknowledged event, a lagging follower and a new member catch up from snapshots, a minority
refuses writes, and an outsider's forged pickle on a peer port runs nothing."""

from __future__ import annotations

import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port, replica, three_replicas, wait_until
from cryptography.fernet import Fernet

from memorose_client import MemoroseClient
from memorose_dagster.cli.local_cluster import LocalCluster, Replica
from memorose_dagster.ids import new_id
from memorose_dagster.node import members as cluster_ops
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, pack


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with three_replicas(tmp_path) as local:
        yield local


class Writers:
    """Threads ingesting batches through ``MemoroseClient`` (which fails over between node
    URLs), recording every acknowledged event id and when it was acknowledged."""

    def __init__(self, urls: list[str], threads: int = 2, batch: int = 20):
        self.acked: list[str] = []
        self.ack_times: list[float] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._batch = batch
        self._threads = [threading.Thread(target=self._run, args=(i, urls[i:] + urls[:i]))
                         for i in range(threads)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, worker: int, urls: list[str]) -> None:
        with MemoroseClient(urls, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                events = [{"user_id": "kt", "stream_id": f"w{worker}",
                           "content": f"kill trial fact {worker} {n} {i}"}
                          for i in range(self._batch)]
                try:
                    ids = client.ingest_batch(events)
                except Exception as exc:  # not acknowledged: allowed, only never counted
                    with self._lock:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.acked.extend(ids)
                    self.ack_times.append(time.monotonic())

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def first_ack_after(self, moment: float) -> float | None:
        with self._lock:
            return next((t for t in self.ack_times if t > moment), None)


def event_ids_on(replica: Replica, user_id: str) -> set[str]:
    response = httpx.get(replica.url + "/api/v1/admin/records",
                         params={"kind": "event", "user_id": user_id}, timeout=60)
    assert response.status_code == 200, response.text
    return {r["event_id"] for r in response.json()["records"]}


def probe_write(urls: list[str], acked: list[str]) -> bool:
    """One single-event write sent now; True once acknowledged."""
    try:
        with MemoroseClient(urls, timeout=20) as client:
            acked.append(client.ingest("kt", "probe", "probe after a leader kill")["event_id"])
        return True
    except Exception:  # no answer yet (election): the caller retries until its deadline
        return False


def test_leader_sigkill_under_load_loses_no_acknowledged_event(cluster: LocalCluster):
    failovers, probes = [], []
    with Writers(cluster.urls) as writers:
        for _trial in range(3):
            start = writers.count()
            wait_until(lambda s=start: writers.count() >= s + 200, 60, what="ingest under way")
            leader = cluster.leader()
            killed_at = time.monotonic()
            cluster.kill(leader)
            survivors = [u for u in cluster.urls if u != leader.url]
            wait_until(lambda s=survivors: probe_write(s, probes), 30, what="write after kill")
            failovers.append(time.monotonic() - killed_at)
            assert cluster.leader() != leader
            resumed = writers.count()
            wait_until(lambda r=resumed: writers.count() >= r + 100, 60,
                       what="ingest continuing through the survivors")
            cluster.start(leader)  # same ports and data directory
            cluster.wait_healthy([leader])
        acked = writers.acked + probes
    print(f"failover seconds: {[round(f, 2) for f in failovers]}; {len(acked)} acknowledged, "
          f"{len(writers.errors)} attempts not acknowledged")
    assert max(failovers) < 10, failovers
    digests = cluster.digests()
    assert len({d["digest"] for d in digests.values()}) == 1
    for member in cluster.replicas:
        missing = set(acked) - event_ids_on(member, "kt")
        assert not missing, f"{member.node_id} lacks {len(missing)} acknowledged events"


def ingest_batches(url: str, batches: int, size: int, tag: str) -> list[str]:
    ids: list[str] = []
    with MemoroseClient(url, timeout=60) as client:
        for b in range(batches):
            ids += client.ingest_batch([{"user_id": "cu", "stream_id": tag,
                                         "content": f"{tag} catch up fact {b} {i} walrus"}
                                        for i in range(size)])
    return ids


def compact_all(cluster: LocalCluster) -> None:
    for member in cluster.replicas:
        if cluster.running(member):
            body = httpx.post(member.url + "/api/v1/admin/snapshot", timeout=60).json()
            assert body["written"] and body["log_len"] < 10, body


def test_lagging_follower_and_new_member_catch_up_from_snapshots(cluster: LocalCluster,
                                                                 tmp_path: Path):
    leader = cluster.leader()
    follower = next(m for m in cluster.replicas if m != leader)
    cluster.stop(follower)
    ids = ingest_batches(leader.url, 30, 100, "away")  # 3,000 events while it is away
    compact_all(cluster)  # whoever leads next can only send it a snapshot
    ids += ingest_batches(cluster.leader().url, 2, 100, "after")
    unique = httpx.post(cluster.leader().url + "/api/v1/events", json={
        "user_id": "cu", "stream_id": "s", "content": "a zygomorphic orchid"}, timeout=30)
    cluster.start(follower)
    cluster.wait_healthy([follower])
    cluster.digests()
    assert "installed snapshot" in follower.log_path.read_text()
    assert set(ids) <= event_ids_on(follower, "cu")
    synced = httpx.post(follower.url + "/api/v1/cluster/sync", timeout=30).json()
    assert synced["applied_index"] >= unique.json()["log_index"]
    hits = httpx.post(follower.url + "/api/v1/retrieve", json={
        "user_id": "cu", "query": "zygomorphic orchid", "top_k": 3}, timeout=30).json()
    assert hits["results"][0]["id"] == unique.json()["event_id"]  # indexes caught up too
    status = cluster.status(follower)
    assert status["indexed_index"] == status["applied_index"]

    newcomer = replica(tmp_path, "n4")
    added = subprocess.run(
        [sys.executable, "-m", "memorose_dagster.cli", "cluster", "add", newcomer.raft_address,
         "--url", ",".join(cluster.urls)], capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stdout + added.stderr
    compact_all(cluster)
    cluster.start(newcomer, peers=list(cluster.replicas[:3]))
    cluster.wait_healthy([newcomer])
    cluster.digests()
    assert "installed snapshot" in newcomer.log_path.read_text()
    wait_until(lambda: all(m["reachable"] and m["lag"] is not None
                           for m in cluster.status(cluster.replicas[0])["members"]),
               20, what="every member in status")
    members = {m["raft_address"]: m for m in cluster.status(cluster.replicas[0])["members"]}
    assert set(members) == {m.raft_address for m in cluster.replicas}
    assert sorted(m["role"] for m in members.values()) == ["follower"] * 3 + ["leader"]
    assert members[newcomer.raft_address]["node_id"] == "n4"
    for member in members.values():
        assert {"term", "commit_index", "applied_index", "lag", "url"} <= set(member)

    removed = httpx.delete(f"{leader.url}/api/v1/admin/cluster/members/{newcomer.raft_address}",
                           timeout=60)
    assert removed.status_code == 200, removed.text
    assert newcomer.raft_address not in removed.json()["members"]
    wait_until(lambda: len(cluster.status(cluster.replicas[0])["members"]) == 3, 20,
               what="membership of three")
    cluster.stop(newcomer)


def test_minority_refuses_writes_with_a_clear_error(cluster: LocalCluster):
    survivor = cluster.replicas[0]
    for member in cluster.replicas[1:]:
        cluster.stop(member)
    answers = []

    def refused() -> bool:
        response = httpx.post(survivor.url + "/api/v1/events", json={
            "user_id": "m", "stream_id": "s", "content": "written without a majority"},
            timeout=30)
        answers.append(response)
        return response.status_code == 503

    wait_until(refused, 60, 0.2, what="a 503 from the minority")
    assert all(a.status_code in (503, 504) for a in answers), [a.text for a in answers]
    error = answers[-1].json()["error"]
    assert error["code"] == "unavailable" and "no quorum" in error["message"], error
    assert "1 of 3" in error["message"]
    status = cluster.status(survivor)
    assert status["has_quorum"] is False
    assert httpx.get(survivor.url + "/api/v1/admin/records", params={
        "kind": "event", "user_id": "m"}, timeout=30).json()["records"] == []


class CreatesFile:
    """Unpickling this creates ``path``: proof that a payload ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def frame(message: object, fernet: Fernet | None = None) -> bytes:
    data = zlib.compress(pickle.dumps(message, protocol=2), 3)
    if fernet is not None:
        data = fernet.encrypt(data)
    return struct.pack("i", len(data)) + data


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_forged_pickle_on_the_peer_port_runs_nothing(node: Node, tmp_path: Path):
    marker = tmp_path / "pwned"
    address = node.settings.raft_address
    host, port = address.rsplit(":", 1)
    applied = node.store.applied_index
    forged_event = Event(event_id=new_id(), tenant="default", user_id="intruder",
                         stream_id="s", content="injected", timestamp=1.0).to_dict()
    inject = {"type": "apply_command", "request_id": 1,
              "command": b"\x00" + pickle.dumps((0, (pack([forged_event]),)), protocol=2)}
    wrong_key = Fernet(Fernet.generate_key())
    attempts = [
        [frame(CreatesFile(marker))],                               # no secret at all
        [frame(os.urandom(32)), frame(address), frame(inject)],     # handshake, then a command
        [frame(CreatesFile(marker), wrong_key)],                    # another cluster's secret
        [frame(os.urandom(32), wrong_key), frame(inject, wrong_key)],
    ]
    for frames in attempts:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            for data in frames:
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    break
            assert closed_by_peer(sock), "the peer port kept talking to an outsider"
    with pytest.raises(ConnectionError):
        cluster_ops.peer_call(address, ["status"], wrong_key, timeout=2)
    assert cluster_ops.peer_call(address, ["status"], node.log.encryptor, timeout=5)["state"] == 2
    # A command of ours commits after anything the node had (wrongly) accepted before it: once it
    # is applied, the log since the outsider's attempts must hold it alone.
    node.ingest([Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                       content="still serving", timestamp=1.0)])
    since = [r for _, records in node.store.scan_log(applied, 100)[0] for r in records]
    assert [r["content"] for r in since] == ["still serving"]
    assert not marker.exists()
    assert not node.has_user("default", "intruder")


def test_cluster_up_runs_replicas_that_share_one_secret(tmp_path: Path):
    port, raft_port = consecutive_free_ports(3), consecutive_free_ports(3)
    home = tmp_path / "cl"
    up = subprocess.Popen(
        [sys.executable, "-m", "memorose_dagster.cli", "cluster", "up", "--nodes", "3",
         "--port", str(port), "--raft-port", str(raft_port), "--data-dir", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    urls = [f"http://127.0.0.1:{port + i}" for i in range(3)]
    try:
        banner = wait_until(lambda: _line_with(up, "MEMOROSE_URL="), 120, what="cluster up")
        assert banner.strip() == "MEMOROSE_URL=" + ",".join(urls)
        secret = (home / "cluster.secret").read_text()
        for i in (1, 2, 3):
            path = home / f"node{i}" / "cluster.secret"
            assert path.read_text() == secret and stat.S_IMODE(path.stat().st_mode) == 0o600
        acked = httpx.post(urls[2] + "/api/v1/events", json={
            "user_id": "cu", "stream_id": "s", "content": "written on node3"}, timeout=30)
        assert acked.status_code == 201, acked.text
        event_id = acked.json()["event_id"]
        assert httpx.post(urls[1] + "/api/v1/cluster/sync", timeout=30).status_code == 200
        assert httpx.get(f"{urls[1]}/api/v1/events/{event_id}", timeout=10).status_code == 200

        def status_table() -> list[list[str]] | None:  # others' rows are polled each second
            table = subprocess.run(
                [sys.executable, "-m", "memorose_dagster.cli", "cluster", "status", "--url",
                 ",".join(urls)], capture_output=True, text=True, timeout=60).stdout
            rows = [line.split() for line in table.splitlines()[1:]]
            return rows if sorted(r[3] for r in rows) == ["follower", "follower", "leader"] \
                else None

        rows = wait_until(status_table, 30, 0.5, what="a status table with one leader")
        leader = next(r for r in rows if r[3] == "leader")
        follower = next(u for u in urls if not u.endswith(f":{leader[2].rsplit(':', 1)[1]}"))
        removed = subprocess.run(
            [sys.executable, "-m", "memorose_dagster.cli", "cluster", "remove", leader[1],
             "--url", follower], capture_output=True, text=True, timeout=120)
        assert removed.returncode == 0, removed.stdout + removed.stderr
        status = httpx.get(follower + "/api/v1/cluster/status", timeout=10).json()
        assert leader[1] not in [m["raft_address"] for m in status["members"]]
        assert status["leader"] not in (None, leader[1]) and len(status["members"]) == 2
        assert httpx.post(follower + "/api/v1/events", json={
            "user_id": "cu", "stream_id": "s", "content": "two members"}, timeout=30
        ).status_code == 201
    finally:
        up.terminate()
        up.wait(timeout=90)
    assert up.returncode == 0
    for url in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)


def consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        base = free_port()
        sockets = []
        try:
            for offset in range(count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", base + offset))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no run of free ports")


def _line_with(process: subprocess.Popen, needle: str) -> str | None:
    if process.poll() is not None:
        raise AssertionError(f"cluster up exited: {process.stdout.read()}")
    line = process.stdout.readline()
    return line if needle in line else None


def test_pipeline_run_in_flight_when_the_leader_dies_leaves_no_duplicates(cluster: LocalCluster):
    from collections import Counter
    from datetime import UTC, datetime

    import dagster as dg

    from assets import ALL_ASSETS
    from memorose_dagster.pipeline import asset_keys as keys
    from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

    pipeline = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
    tags = ["".join(chr(97 + int(d)) for d in f"{i:03d}") for i in range(300)]
    contents = [f"Session {t}: I practised the cello piece {t}{t} with teacher {t}x"
                for t in tags]
    with MemoroseClient(cluster.urls, timeout=30) as client:
        ids = client.ingest_batch([{"user_id": "pl", "stream_id": "s", "content": c}
                                   for c in contents])
        start_index = client.cluster_status()["applied_index"]
    leader = cluster.leader()
    resources = {"cluster": ClusterResource(urls=",".join(cluster.urls)), "model": ModelResource()}
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = dg.materialize(pipeline, resources=resources,
                                               partition_key=datetime.now(UTC).strftime("%Y-%m-%d"))
        except Exception as exc:  # a run that dies with the leader is allowed; it is rerun
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: (cluster.status(leader) or {}).get("applied_index", 0) > start_index, 60,
               what="the run's first commits")
    cluster.kill(leader)
    thread.join(timeout=300)
    survivors = ",".join(u for u in cluster.urls if u != leader.url)
    if "error" in outcome or not outcome["result"].success:
        rerun = dg.materialize(pipeline, resources={**resources,
                                                    "cluster": ClusterResource(urls=survivors)},
                               partition_key=datetime.now(UTC).strftime("%Y-%m-%d"))
        assert rerun.success
    cluster.start(leader)
    cluster.wait_healthy([leader])
    digests = cluster.digests()
    assert len({d["digest"] for d in digests.values()}) == 1
    records = httpx.get(cluster.urls[0] + "/api/v1/admin/records",
                        params={"kind": "l1", "user_id": "pl"}, timeout=60).json()["records"]
    own = Counter(m["source_event_ids"][0] for m in records)
    assert set(own) == set(ids) and max(own.values()) == 1  # one memory per event, no copies
