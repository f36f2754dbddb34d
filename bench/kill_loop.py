"""SIGKILL loop: a node killed at random moments, restarted each time, loses no acknowledged
event.

One node (``memorose serve``, free 127.0.0.1 ports, its own temp data directory) takes
batched ingest from ``--writers`` clients (``MemoroseClient``, which names every event before
its first attempt; a batch that was not acknowledged is resent with the same ids until it is).
``--kills`` times, after a random 0.3-2 s of ingest, the node is killed with SIGKILL; every
``--snapshot-every``-th kill follows a ``POST /api/v1/admin/snapshot``: it lands within 10 ms
of the snapshot's files appearing, while the snapshot is being written (kills that left a
snapshot half written are counted from the files the writer leaves behind). The node is
restarted at once on the same data directory and ports. At the end every acknowledged event
must be stored (read back per user through ``/api/v1/admin/records``).

Reported: kills, acknowledged events, lost (must be 0), resends answered with the ids already
stored, and time to recover per restart: kill -> /health 200, and kill -> the next
acknowledged batch (p50 / max). Exit code 1 if anything was lost.

    python bench/kill_loop.py              # 20 kills, 2-5 minutes on 2 cores
    python bench/kill_loop.py --kills 50
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from node_process import NodeProcess, wait_for

from memorose_client import MemoroseClient
from memorose_dagster.ids import new_id


class Writers:
    """Clients acknowledging batches until stopped; a failed batch is resent as it was."""

    def __init__(self, url: str, writers: int, batch: int):
        self.acked: set[str] = set()
        self.failures = 0
        self.resends = 0
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, f"kill{w}", batch))
                         for w in range(writers)]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, user: str, batch: int) -> None:
        with MemoroseClient(url, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                events = [{"event_id": new_id(), "user_id": user, "stream_id": "s",
                           "content": f"{user} fact {n + i}: hiking, coffee and the weekly "
                           "team meeting"} for i in range(batch)]
                n += batch
                attempts = 0
                while not self._stop.is_set():
                    attempts += 1
                    try:
                        ids = client.ingest_batch(events)
                    except Exception:  # down, restarting or refusing: resend the same batch
                        with self._lock:
                            self.failures += 1
                        time.sleep(0.05)
                        continue
                    with self._lock:
                        self.acked.update(ids)
                        self.resends += attempts > 1
                    break

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def snapshot_leftovers(home: Path) -> bool:
    """A snapshot being written has temp files in raft/ (a crash leaves them; the next start
    removes them): the checkpoint it is made from, and the tar being written. (pysyncobj's
    ``*.tmp`` stand-in is no sign: a crash leaves it, and nothing removes it until the next
    snapshot.)"""
    raft = home / "raft"
    return any(raft.glob(".snapshot-*")) or any(raft.glob("*.writing"))


def stored_ids(url: str, users: list[str]) -> set[str]:
    ids: set[str] = set()
    for user in users:
        response = httpx.get(url + "/api/v1/admin/records",
                             params={"kind": "event", "user_id": user}, timeout=300)
        response.raise_for_status()
        ids |= {r["event_id"] for r in response.json()["records"]}
    return ids


def kill_once(node: NodeProcess, writers: Writers, rng: random.Random, snapshot: bool,
              ) -> tuple[float, float, bool]:
    """Ingest a while, kill, restart: (kill -> healthy, kill -> next ack, snapshot cut)."""
    time.sleep(rng.uniform(0.3, 2.0))
    if snapshot:  # kill as soon as the snapshot's files appear, while it is being written
        threading.Thread(target=_request_snapshot, args=(node.url,), daemon=True).start()
        deadline = time.monotonic() + 3.0
        while not snapshot_leftovers(node.home) and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.01))
    acked = writers.count()
    killed_at = time.perf_counter()
    node.kill()
    cut = snapshot_leftovers(node.home)
    node.start()
    healthy = time.perf_counter() - killed_at
    wait_for(lambda: writers.count() > acked, 120, "an acknowledged batch after the restart")
    return healthy, time.perf_counter() - killed_at, cut


def _request_snapshot(url: str) -> None:
    try:
        httpx.post(url + "/api/v1/admin/snapshot", timeout=60)
    except httpx.TransportError:  # killed under it: that is the point
        pass


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {ordered[len(ordered) // 2]:.2f} / max {ordered[-1]:.2f} s"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, home: Path) -> dict:
    rng = random.Random(args.seed)
    node = NodeProcess(home)
    node.start()
    writers = Writers(node.url, args.writers, args.batch)
    healthy, first_ack, cuts, snapshots = [], [], 0, 0
    try:
        wait_for(lambda: writers.count() > 0, 60, "the first acknowledged batch")
        for kill in range(args.kills):
            snapshot = args.snapshot_every > 0 and kill % args.snapshot_every == 0
            snapshots += snapshot
            up, acked, cut = kill_once(node, writers, rng, snapshot)
            healthy.append(up)
            first_ack.append(acked)
            cuts += cut
            log(f"kill {kill + 1}/{args.kills}{' after a snapshot request' if snapshot else ''}"
                f"{' (snapshot write cut short)' if cut else ''}: healthy in {up:.2f}s, next "
                f"ack in {acked:.2f}s; {writers.count():,} events acknowledged")
    finally:
        writers.stop()
    try:
        stored = stored_ids(node.url, [f"kill{w}" for w in range(args.writers)])
    finally:
        code = node.stop()
    return {"acked": writers.acked, "stored": stored, "healthy": healthy,
            "first_ack": first_ack, "cuts": cuts, "snapshots": snapshots,
            "failures": writers.failures, "resends": writers.resends, "exit": code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--writers", type=int, default=2, help="concurrent clients")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--snapshot-every", type=int, default=3,
                        help="every Nth kill follows a snapshot request (0: never)")
    parser.add_argument("--seed", type=int, default=None, help="for the random kill moments")
    args = parser.parse_args()
    started = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="memorose-kill-loop-") as tmp:
        result = run(args, Path(tmp) / "node")
    lost = result["acked"] - result["stored"]
    unacked = len(result["stored"] - result["acked"])
    print(f"memorose kill loop | {started} | cpus={os.cpu_count()} | load avg {load_start} "
          f"| {platform.platform()} | Python {platform.python_version()}")
    rows = [
        ("SIGKILLs", f"{args.kills}", f"{result['snapshots']} after a snapshot request, "
         f"{result['cuts']} cut a snapshot write short"),
        ("acknowledged events", f"{len(result['acked']):,}",
         f"{args.writers} writers, batches of {args.batch}; {result['failures']} failed "
         f"attempts, {result['resends']} batches acknowledged on a resend"),
        ("lost", f"{len(lost)}", "acknowledged but not stored after the last restart"),
        ("stored, never acknowledged", f"{unacked}",
         "committed when a kill cut the answer; the writer stopped before resending"),
        ("kill -> /health 200", percentiles(result["healthy"]), "process start, model load, "
         "journal replay"),
        ("kill -> next acknowledged batch", percentiles(result["first_ack"]), ""),
    ]
    for name, value, notes in rows:
        print(f"{name:<32} {value:>24}  {notes}")
    print(f"node stopped at the end: exit code {result['exit']}; load avg at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
