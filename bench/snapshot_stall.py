"""Commit latency while a snapshot is written: the Raft tick must not stall.

    python bench/snapshot_stall.py [--batches 300]

Fills a one-member node with ``--batches`` x 500 events, each with a 384-float vector (about
450 MB of RocksDB), then keeps committing one event at a time while a snapshot is taken, and
reports the commit latency during the snapshot. The baseline, measured in the same run, is the
time to write the same snapshot file in the foreground: how long every commit (and heartbeat)
waited when the tar was written in pysyncobj's tick thread.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_retrieve import free_port, header, percentiles  # noqa: E402

from memorose_dagster.ids import new_id  # noqa: E402
from memorose_dagster.log import replicated  # noqa: E402
from memorose_dagster.node.node import Node  # noqa: E402
from memorose_dagster.records import Event, Vector, pack  # noqa: E402
from memorose_dagster.settings import Settings  # noqa: E402


def event(user: str, content: str) -> Event:
    return Event(event_id=new_id(), tenant="default", user_id=user, stream_id="s",
                 content=content, timestamp=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300, help="batches of 500 events")
    args = parser.parse_args(argv)
    print(header("snapshot stall"), flush=True)
    root = Path(tempfile.mkdtemp(prefix="memorose-snapshot-"))
    rng = np.random.default_rng(1)
    node = Node(Settings(home=root / "node", port=free_port(), raft_port=free_port()))
    try:
        node.wait_ready()
        for _ in range(args.batches):
            events = [event(f"u{i % 50}", "x" * 50) for i in range(500)]
            vectors = [Vector(tenant="default", record_id=e.event_id, layer="L0", model="bench",
                              values=rng.random(384, dtype=np.float32).tobytes())
                       for e in events]
            node.submit([e.to_dict() for e in events] + [v.to_dict() for v in vectors],
                        wait_indexed=False)
        dump = Path(node.log.conf.fullDumpFile)
        node.log.forceLogCompaction()  # the first snapshot: written in the tick, not measured
        while not dump.exists():
            time.sleep(0.05)
        node.store.checkpoint(root / "checkpoint")  # the baseline: the same file, in foreground
        started = time.perf_counter()
        replicated.write_snapshot(root / "foreground.tar", pack({}), root / "checkpoint")
        foreground = time.perf_counter() - started
        size = (root / "foreground.tar").stat().st_size

        latencies: list[float] = []
        done = threading.Event()

        def commit_one_by_one() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                node.submit([event("ping", "ping").to_dict()], wait_indexed=False)
                latencies.append((time.perf_counter() - t0) * 1000)

        pinger = threading.Thread(target=commit_one_by_one)
        pinger.start()
        time.sleep(1.0)
        before, mark = dump.stat().st_mtime_ns, len(latencies)
        started = time.perf_counter()
        node.log.forceLogCompaction()
        while dump.stat().st_mtime_ns == before:
            time.sleep(0.01)
        background = time.perf_counter() - started
        during = latencies[mark:]
        done.set()
        pinger.join()
    finally:
        node.close()
        shutil.rmtree(root, ignore_errors=True)
    p50, p99 = percentiles(during, (50, 99))
    print(f"snapshot of {size / 1e6:,.0f} MB\n")
    print("| snapshot write | time to write | commit latency while writing |")
    print("| --- | --- | --- |")
    print(f"| in the tick thread (baseline: every commit waits) | {foreground:.2f} s "
          f"| >= {foreground * 1000:,.0f} ms |")
    print(f"| background writer | {background:.2f} s | p50 {p50:.1f} / p99 {p99:.1f} / "
          f"max {max(during):.1f} ms ({len(during)} commits) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
