"""Batched ingest into one node by the number of clients, with the server's CPU.

Conversational events from ``history.py`` (the same as ``realistic.py``), 500 a batch, the
request bodies serialized before the clock starts (so the clients, on the same 2 cores, cost
next to nothing), into a fresh ``memorose serve`` per client count. Each row gives events/s,
the node's CPU over the run (from ``/proc``, in cores: its own process, then its ingest
workers), the clients' CPU and the batch latency. The baseline, in the same run: the same
events as the stored records, written to a raw RocksDB in WriteBatches of 500 (no HTTP, no
log, no index). ``--workers 0,auto`` adds rows with the batches read in the node's process
(``MEMOROSE_INGEST_WORKERS=0``), as before ingest workers.

    python bench/ingest_clients.py                      # 80k events at 1, 2, 4, 8 clients
    python bench/ingest_clients.py --events 20000 --clients 2,4 --workers 0,auto
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from history import History
from ingest_retrieve import (
    BATCH,
    REQUEST_TIMEOUT,
    BenchError,
    NodeProcess,
    Row,
    format_table,
    header,
    progress,
    rate,
    stored_form,
    write_batches,
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (a node's ingest workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def children_cpu(pid: int, kids: list[int]) -> float:
    total = 0.0
    for kid in kids:
        try:
            total += cpu_seconds(kid)
        except OSError:
            continue
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rocksdb_baseline(root: Path, events: list[dict]) -> Row:
    pairs = [stored_form(event, i) for i, event in enumerate(events)]
    seconds = write_batches(root / "baseline", pairs)
    return Row(f"baseline: RocksDB WriteBatch({BATCH})", len(pairs), seconds,
               rate(len(pairs), seconds), "the same events as stored records, no HTTP/log/index")


def ingest(root: Path, bodies: list[bytes], events: int, clients: int, workers: str) -> Row:
    name = f"node-{clients}-{workers}"
    node = NodeProcess(root / name, root / f"{name}.log")
    saved = os.environ.get("MEMOROSE_INGEST_WORKERS")
    os.environ["MEMOROSE_INGEST_WORKERS"] = "" if workers == "auto" else workers
    try:
        node.start()
    finally:
        if saved is None:
            del os.environ["MEMOROSE_INGEST_WORKERS"]
        else:
            os.environ["MEMOROSE_INGEST_WORKERS"] = saved
    latencies: list[float] = []
    failures: list[str] = []

    def send(part: list[bytes]) -> None:
        with httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
            for body in part:
                started = time.perf_counter()
                resp = client.post("/api/v1/events/batch", content=body,
                                   headers={"content-type": "application/json"})
                if resp.status_code != 201:
                    failures.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    return
                latencies.append(time.perf_counter() - started)

    try:
        pid = node.pid
        threads = [threading.Thread(target=send, args=(bodies[i::clients],))
                   for i in range(clients)]
        # The workers start beside the node: give them a moment to be there (a node
        # answers /health first), then count them.
        deadline = time.monotonic() + 5.0
        while workers != "0" and not children(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        kids = children(pid)
        server0, client0, started = cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
        kids0 = children_cpu(pid, kids)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        server, client = cpu_seconds(pid) - server0, own_cpu_seconds() - client0
        helpers = children_cpu(pid, kids) - kids0
    finally:
        node.stop()
    if failures:
        raise BenchError(failures[0])
    p50 = statistics.median(latencies) * 1000
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000
    label = f"ingest, {clients} client{'s' if clients > 1 else ''}"
    if workers == "0":
        label += ", no workers"
    return Row(label, events, seconds, rate(events, seconds),
               f"server {server / seconds:.2f} + {len(kids)} workers {helpers / seconds:.2f} "
               f"cores, clients {client / seconds:.2f}; batch p50 {p50:.0f} / p99 {p99:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=80_000)
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--clients", default="1,2,4,8",
                        help="client counts, comma-separated (default 1,2,4,8)")
    parser.add_argument("--workers", default="auto",
                        help="ingest workers per node, comma-separated: a count, or auto "
                             "(the node's default); 0 reads batches in the node's process")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    pools = [w.strip() for w in args.workers.split(",") if w.strip()]
    if not pools or any(w != "auto" and not w.isdigit() for w in pools):
        parser.error("--workers: counts or auto, comma-separated")
    if args.events < BATCH or not counts or min(counts) < 1:
        parser.error(f"--events at least {BATCH}, --clients positive counts")
    events = History(args.events, args.users).events()[:args.events]
    bodies = [json.dumps({"events": events[i:i + BATCH]}).encode()
              for i in range(0, len(events), BATCH)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memorose-ingest-") as tmp:
        root = Path(tmp)
        progress(f"baseline, {len(events):,} events")
        rows.append(rocksdb_baseline(root, events))
        for clients in counts:
            for workers in pools:
                progress(f"{clients} clients, workers {workers}")
                rows.append(ingest(root, bodies, len(events), clients, workers))
    print(header("ingest by clients"))
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
