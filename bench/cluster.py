"""Raft cluster bench: batched ingest on 1 vs 3 replicas, failover, catch-up, and loss under
leader kills, all as real processes on 127.0.0.1, printed as one table.

* batched ingest (``POST /api/v1/events/batch``, ``--batch`` events a batch, ``--writers``
  clients) into a standalone node, then into a 3-replica cluster: every write to the leader, and
  spread over all three replicas (a follower forwards to the leader);
* catch-up of a follower stopped (SIGTERM) while ``--catchup`` events were ingested: restart ->
  caught up (healthy, applied and indexed up to the leader's commit), through the log, and through
  a snapshot (every live replica compacted its log first); the restart of a follower that missed
  nothing is the baseline (process start, model load, election hold);
* ``--trials`` leader kills (SIGKILL) during a steady stream of acknowledged batches spread over
  all replicas: failover = kill -> first acknowledged single-event write sent after the kill; the
  killed replica restarts before the next trial. Afterwards every acknowledged event must be on
  every replica and the replicas' RocksDB digests identical.

    python bench/cluster.py              # 5 kill trials (about 2 minutes on 2 cores)
    python bench/cluster.py --trials 20  # the 20-trial loss check
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from node_process import wait_for

from memorose_client import MemoroseClient
from memorose_dagster.cli.local_cluster import LocalCluster, Replica

WARM_UP = 2000  # events ingested, untimed, before each throughput phase


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_cluster(root: Path, size: int) -> LocalCluster:
    replicas = [Replica(f"n{i + 1}", "127.0.0.1", free_port(), free_port(), root / f"n{i + 1}")
                for i in range(size)]
    cluster = LocalCluster(replicas, secrets.token_urlsafe(24))
    cluster.start_all()
    cluster.wait_healthy()
    return cluster


def batches(user: str, tag: str, count: int, size: int):
    for b in range(count):
        yield [{"user_id": user, "stream_id": tag, "content": f"{tag} bench fact {b} {i} "
                "about hiking, coffee and the weekly team meeting"} for i in range(size)]


def ingest(urls: list[str], events: int, batch: int, writers: int, tag: str) -> float:
    """Ingest ``events`` with ``writers`` clients (client i starts at urls[i % len]): seconds."""
    per_writer = events // (batch * writers)

    def run(worker: int) -> None:
        order = urls[worker % len(urls):] + urls[:worker % len(urls)]
        with MemoroseClient(order, timeout=60) as client:
            for events_ in batches("bench", f"{tag}{worker}", per_writer, batch):
                client.ingest_batch(events_)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def caught_up(cluster: LocalCluster, replica: Replica, target: int) -> bool:
    status = cluster.status(replica) or {}
    return status.get("raft_applied_index", -1) >= target and \
        status.get("indexed_index", -1) >= status.get("applied_index", 0)


def catch_up(cluster: LocalCluster, args: argparse.Namespace, missed: int,
             compact: bool) -> tuple[float, bool]:
    """Stop a follower, ingest ``missed`` events, restart it: seconds until it caught up, and
    whether it installed a snapshot."""
    leader = cluster.leader()
    follower = next(r for r in cluster.replicas if r != leader)
    cluster.stop(follower)
    if missed:
        ingest([leader.url], missed, args.batch, 1, "away")
    if compact:
        for replica in cluster.replicas:
            if cluster.running(replica):
                httpx.post(replica.url + "/api/v1/admin/snapshot", timeout=120)
    target = cluster.status(cluster.leader())["commit_index"]
    log_size = follower.log_path.stat().st_size
    started = time.perf_counter()
    cluster.start(follower)
    cluster.wait_healthy([follower])
    while not caught_up(cluster, follower, target):
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    with follower.log_path.open("rb") as f:
        f.seek(log_size)
        return seconds, b"installed snapshot" in f.read()


class Stream:
    """Writers acknowledging batches, spread over every replica, until stopped."""

    def __init__(self, urls: list[str], writers: int, batch: int):
        self.acked: list[str] = []
        self.failed = 0
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(urls[w:] + urls[:w], batch, w))
                         for w in range(writers)]
        for thread in self._threads:
            thread.start()

    def _run(self, urls: list[str], batch: int, worker: int) -> None:
        with MemoroseClient(urls, timeout=30) as client:
            for events in batches("kill", f"k{worker}", 10**9, batch):
                if self._stop.is_set():
                    return
                try:
                    ids = client.ingest_batch(events)
                except Exception:  # not acknowledged: counted, never checked
                    with self._lock:
                        self.failed += 1
                    continue
                with self._lock:
                    self.acked.extend(ids)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def first_write(urls: list[str], probes: list[str]) -> None:
    """Single-event writes sent after the kill, until one is acknowledged."""
    while True:
        try:
            with MemoroseClient(urls, timeout=20) as client:
                probes.append(client.ingest("kill", "probe", "after the kill")["event_id"])
                return
        except Exception:  # election still running
            time.sleep(0.01)


def kill_trials(cluster: LocalCluster, args: argparse.Namespace) -> dict:
    stream, failovers, probes = Stream(cluster.urls, args.writers, 50), [], []
    try:
        for trial in range(args.trials):
            start = stream.count()
            wait_for(lambda s=start: stream.count() >= s + 500, 120, "ingest under way")
            leader = cluster.leader()
            killed_at = time.perf_counter()
            cluster.kill(leader)
            first_write([u for u in cluster.urls if u != leader.url], probes)
            failovers.append(time.perf_counter() - killed_at)
            resumed = stream.count()
            wait_for(lambda r=resumed: stream.count() >= r + 200, 120, "ingest resuming")
            cluster.start(leader)
            cluster.wait_healthy([leader])
            log(f"kill trial {trial + 1}/{args.trials}: failover {failovers[-1]:.2f}s")
    finally:
        stream.stop()
    acked = set(stream.acked) | set(probes)
    digests = cluster.digests(timeout=300)
    lost = {r.node_id: len(acked - stored_ids(r)) for r in cluster.replicas}
    return {"failovers": failovers, "acked": len(acked), "failed": stream.failed,
            "lost": lost, "identical": len({d["digest"] for d in digests.values()}) == 1}


def stored_ids(replica: Replica) -> set[str]:
    response = httpx.get(replica.url + "/api/v1/admin/records",
                         params={"kind": "event", "user_id": "kill"}, timeout=300)
    response.raise_for_status()
    return {r["event_id"] for r in response.json()["records"]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def row(phase: str, n: int | str, seconds: float | str, rate: str, notes: str = "") -> str:
    seconds = f"{seconds:8.2f}" if isinstance(seconds, float) else f"{seconds:>8}"
    n = f"{n:,}" if isinstance(n, int) else n
    return f"{phase:<38} {n:>8} {seconds} {rate:<22} {notes}"


def throughput_rows(root: Path, args: argparse.Namespace) -> tuple[list[str], float]:
    single = new_cluster(root / "single", 1)
    try:
        ingest(single.urls, WARM_UP, args.batch, args.writers, "warm")
        seconds = ingest(single.urls, args.events, args.batch, args.writers, "one")
    finally:
        single.stop_all()
    base = args.events / seconds
    rows = [row("batched ingest, 1 node", args.events, seconds, f"{base:,.0f} ev/s",
                f"batch {args.batch} x{args.writers} writers")]
    return rows, base


def cluster_rows(cluster: LocalCluster, args: argparse.Namespace, base: float) -> list[str]:
    rows = []
    ingest(cluster.urls, WARM_UP, args.batch, args.writers, "warm")
    for label, urls in (("to the leader", [cluster.leader().url]), ("spread over 3", cluster.urls)):
        seconds = ingest(urls, args.events, args.batch, args.writers, label[:2])
        rate = args.events / seconds
        rows.append(row(f"batched ingest, 3 nodes, {label}", args.events, seconds,
                        f"{rate:,.0f} ev/s", f"{rate / base:.0%} of 1 node; goal >= 3,000"))
        log(rows[-1])
    for label, missed, compact in (("restart, nothing missed", 0, False),
                                   ("catch-up via log", args.catchup, False),
                                   ("catch-up via snapshot", args.catchup, True)):
        seconds, snapshot = catch_up(cluster, args, missed, compact)
        rows.append(row(f"follower {label}", missed, seconds, "-",
                        "restart -> applied and indexed up to the leader's commit"
                        + ("; installed a snapshot" if snapshot else "")))
        log(rows[-1])
    return rows


def trial_rows(result: dict, trials: int) -> list[str]:
    f = sorted(result["failovers"])
    p50 = f[len(f) // 2]
    lost = sum(result["lost"].values())
    return [
        row("failover (leader SIGKILL -> 1st ack)", trials, f[-1], f"p50 {p50:.2f} / max "
            f"{f[-1]:.2f} s", f"min {f[0]:.2f} s; goal <= 3 s"),
        row("acknowledged events lost", result["acked"], "-", f"{lost} lost",
            f"per replica {result['lost']}; digests identical: {result['identical']}; "
            f"{result['failed']} batches not acknowledged"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30000, help="events per ingest phase")
    parser.add_argument("--batch", type=int, default=500, help="events per batch")
    parser.add_argument("--writers", type=int, default=2, help="concurrent clients")
    parser.add_argument("--catchup", type=int, default=20000, help="events a follower misses")
    parser.add_argument("--trials", type=int, default=5, help="leader kills")
    args = parser.parse_args()
    started = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="memorose-cluster-bench-") as tmp:
        rows, base = throughput_rows(Path(tmp), args)
        cluster = new_cluster(Path(tmp) / "three", 3)
        try:
            rows += cluster_rows(cluster, args, base)
            rows += trial_rows(kill_trials(cluster, args), args.trials)
        finally:
            cluster.stop_all()
    print(f"memorose cluster bench | {started} | cpus={os.cpu_count()} | load avg {load_start} "
          f"| {platform.platform()} | Python {platform.python_version()}")
    print(row("phase", "n", "seconds", "rate", "notes"))
    print("-" * 120)
    print("\n".join(rows))
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
