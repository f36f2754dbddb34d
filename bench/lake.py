"""The audit lake: lake write time, full audit time and export/import throughput, against a
plain DuckDB COUNT(*) over the same parquet in the same run.

    python bench/lake.py [--events 100000] [--million] [--quick]

A node runs in this process (real RocksDB, Tantivy, LanceDB, a one-member Raft group) behind
uvicorn on a free 127.0.0.1 port. It is filled with ``--events`` events over 100 users and 10
ingest days, and synthetic derived records committed through the log like the pipeline's (one
L1 memory per event with a 384-d vector, an entity and a relation per 20 memories, a few
tombstones): the lake is measured, not the consolidator. Then: the full lake write (all
partitions), incremental writes (1,000 new events; 1,000 more with their derived records: the
changed records read back by key and merged into their partitions), the index census,
the full audit, COUNT(*) over the lake's parquet (the baseline), export of the tenant over HTTP
and import into a second, empty node over HTTP.
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

import duckdb  # noqa: E402
import uvicorn  # noqa: E402

from api import create_app  # noqa: E402
from memorose_client import MemoroseClient  # noqa: E402
from memorose_dagster.ids import id_floor  # noqa: E402
from memorose_dagster.lake import build, files  # noqa: E402
from memorose_dagster.lake.in_process import LakeNodeClient  # noqa: E402
from memorose_dagster.lake.report import build_report  # noqa: E402
from memorose_dagster.lake.transfer import export, import_archive  # noqa: E402
from memorose_dagster.log.store import ingest_day  # noqa: E402
from memorose_dagster.models.embedding import LocalMiniLM  # noqa: E402
from memorose_dagster.node.node import Node  # noqa: E402
from memorose_dagster.records import Entity, Event, Memory, Relation, Tombstone, Vector  # noqa: E402
from memorose_dagster.settings import Settings  # noqa: E402

USERS, DAYS, BATCH = 100, 10, 1000


def start(home: Path, embedder: LocalMiniLM) -> tuple[Node, uvicorn.Server, str]:
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    node = Node(Settings(home=home, port=ports[0], raft_port=ports[1]), embedder=embedder)
    node.wait_ready()
    server = uvicorn.Server(uvicorn.Config(create_app(node=node), host="127.0.0.1",
                                           port=ports[0], log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return node, server, f"http://127.0.0.1:{ports[0]}"


def events(n: int, start_ms: int, step_ms: int, first: int = 0) -> list[Event]:
    return [Event(event_id=id_floor(start_ms + i * step_ms), tenant="default",
                  user_id=f"user_{i % USERS}", stream_id=f"s{i % 7}",
                  content=f"user {i % USERS} said fact {first + i} about topic {i % 97}",
                  timestamp=(start_ms + i * step_ms) / 1000, metadata={"turn": first + i})
            for i in range(n)]


def derived(batch: list[Event], rng: np.random.Generator) -> list[dict]:
    out: list[dict] = []
    for i, a in enumerate(batch):
        mid = f"l1_{a.event_id}"
        out.append(Memory(id=mid, tenant="default", user_id=a.user_id, stream_id=a.stream_id,
                          content=a.content, source_event_ids=[a.event_id]).to_dict())
        values = rng.standard_normal(384).astype("<f4")
        out.append(Vector(tenant="default", record_id=mid, layer="L1", model="bench",
                          values=(values / np.linalg.norm(values)).tobytes()).to_dict())
        if i % 20 == 0:
            eid = f"ent_{a.event_id}"
            out.append(Entity(id=eid, tenant="default", user_id=a.user_id, name=eid,
                              memory_ids=[mid]).to_dict())
            out.append(Relation(id=f"rel_{a.event_id}", tenant="default", user_id=a.user_id,
                                source=eid, target=mid, relation="mentioned_in",
                                source_event_ids=[a.event_id]).to_dict())
    return out


def fill(node: Node, n: int, start_ms: int, step_ms: int) -> None:
    rng = np.random.default_rng(7)
    made = events(n, start_ms, step_ms)
    for i in range(0, n, BATCH):
        chunk = made[i:i + BATCH]
        node.ingest(chunk)
        records = derived(chunk, rng)
        for j in range(0, len(records), 500):
            node.commit_derived(records[j:j + 500])
        print(f"\rfill {i + len(chunk):,}/{n:,}", end="", file=sys.stderr, flush=True)
    node.commit_derived([Tombstone(tenant="default", target_kind="l1",
                                   target_id=f"l1_{e.event_id}", reason="decayed").to_dict()
                         for e in made[1:2000:20]])  # none of them named by an entity
    print(file=sys.stderr)


def timed(rows: list, name: str, count: int, unit: str, fn, note: str = ""):
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    rows.append((name, f"{seconds:.3f}", f"{count / seconds:,.0f} {unit}/s" if count else "",
                 note))
    print(f"{name}: {seconds:.2f} s", file=sys.stderr)
    return out


def run(n: int, tmp: Path) -> list[tuple]:
    embedder = LocalMiniLM()
    node, server, url = start(tmp / "source", embedder)
    rows: list[tuple] = []
    root, client = tmp / "lake", LakeNodeClient(node)
    try:
        now_ms = int(time.time() * 1000)
        start_ms = now_ms - DAYS * 86_400_000
        timed(rows, f"fill: ingest + derived ({n:,} events)", n, "events",
              lambda: fill(node, n, start_ms, DAYS * 86_400_000 // n))
        stats = timed(rows, "lake write, full", n, "events", lambda: build.refresh(client, root))
        total = sum(s["rows"] for s in stats.values())
        rows[-1] = (*rows[-1][:3], f"{total:,} rows in {len(files.partitions(root, 'events'))} "
                    "event partitions")
        before = node.applied_index
        node.ingest(events(1000, now_ms + 1000, 1, n))
        timed(rows, "lake write, incremental (1,000 new events)", 1000, "events",
              lambda: build.merge_range(client, root, before, None))
        before = node.applied_index
        added = events(1000, now_ms + 2000, 1, n + 1000)
        node.ingest(added)
        node.commit_derived(derived(added, np.random.default_rng(8)))
        timed(rows, "lake write, incremental (1,000 events + derived)", 1000, "events",
              lambda: build.merge_range(client, root, before, None))
        rows[-1] = (*rows[-1][:3], "2,100 records: memories, vectors, entities, relations")
        today = ingest_day(added[0].event_id)
        timed(rows, "baseline: that day rewritten from a scan of every kind", 0, "",
              lambda: build.refresh(client, root, {today}))
        rows[-1] = (*rows[-1][:3], "how a log range was written before")
        census = timed(rows, "index census (RocksDB vs Tantivy, LanceDB)", 0, "",
                       client.index_census)
        report = timed(rows, "full audit (DuckDB over the lake)", total, "rows",
                       lambda: build_report(root, census, node.applied_index))
        glob = files.table_glob(root, "events")
        con = duckdb.connect()
        count = timed(rows, "baseline: COUNT(*) over events parquet", 0, "", lambda: con.execute(
            f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0])
        rows[-1] = (*rows[-1][:3], f"{count:,} rows")
        failed = [a["name"] for a in report["audits"] if not a["passed"]]
        rows.append(("audit verdict", "", "", f"failed: {failed or 'none'}"))
        with MemoroseClient(url, timeout=300) as http:
            manifest = timed(rows, "export tenant over HTTP", total, "records",
                             lambda: export(http, "default", tmp / "archive", quiet=True))
        fresh, fresh_server, fresh_url = start(tmp / "target", embedder)
        try:
            with MemoroseClient(fresh_url, timeout=300) as http:
                timed(rows, "import into an empty node over HTTP", manifest["records"],
                      "records", lambda: import_archive(http, tmp / "archive", quiet=True))
        finally:
            fresh_server.should_exit = True
            fresh.close()
    finally:
        server.should_exit = True
        node.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 events (slow)")
    parser.add_argument("--quick", action="store_true", help="10,000 events")
    args = parser.parse_args()
    n = 1_000_000 if args.million else 10_000 if args.quick else args.events
    tmp = Path(tempfile.mkdtemp(prefix="memorose-lake-bench-"))
    try:
        rows = run(n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    widths = [max(len(str(r[i])) for r in rows + [("phase", "seconds", "rate", "notes")])
              for i in range(4)]
    for n_row, row in enumerate([("phase", "seconds", "rate", "notes"), *rows]):
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        if n_row == 0:
            print("-|-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
