"""ANN recall: the LanceDB vector index (per-user prefilter) against an exact scan.

    python bench/ann_recall.py [--rows 30000] [--users 100] [--queries 200]
                               [--index ivf_flat,ivf_hnsw_sq,ivf_pq]

Embeds ``--rows`` sentences of the ingest bench's workload with the node's MiniLM, spread over
``--users`` users, writes them through the node's ``VectorIndex`` and builds its ANN index the
way the indexer does (``optimize``), one table per index type of ``--index`` (the time to
build it and to take in 20% more rows). Then, for ``--queries`` queries of that workload, compares
the user's 10 and 30 nearest rows (30 is the pool retrieve fuses) through the index with an exact
flat scan of the same user (the baseline, measured in the same run), and the latency of both.
Everything runs in this process, in a temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_retrieve import Workload, header, percentiles  # noqa: E402

from memorose_dagster.index.vectors import (  # noqa: E402
    ANN_INDEXES,
    ANN_MIN_ROWS,
    DEFAULT_ANN,
    VectorIndex,
    VectorRow,
)
from memorose_dagster.models.embedding import LocalMiniLM  # noqa: E402

SEED = 11


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30_000,
                        help=f"vectors to index (the ANN index is built from {ANN_MIN_ROWS:,})")
    parser.add_argument("--users", type=int, default=100, help="users the rows belong to")
    parser.add_argument("--queries", type=int, default=200, help="queries to compare")
    parser.add_argument("--index", default=",".join(ANN_INDEXES),
                        help=f"index types to compare, comma-separated ({DEFAULT_ANN} is the "
                             "node's)")
    args = parser.parse_args(argv)
    if args.rows < ANN_MIN_ROWS:
        parser.error(f"--rows must be at least {ANN_MIN_ROWS:,}: below that there is no index")
    if args.users < 1 or args.queries < 1:
        parser.error("--users and --queries must be positive")
    args.index = [name.strip() for name in args.index.split(",") if name.strip()]
    if not args.index or set(args.index) - set(ANN_INDEXES):
        parser.error(f"--index: names from {', '.join(ANN_INDEXES)}")
    return args


def rows_of(workload: Workload, embedder: LocalMiniLM, first: int, count: int,
            users: int) -> list[VectorRow]:
    out = []
    for start in range(first, first + count, 1000):
        texts = [workload.sentence() for _ in range(min(1000, first + count - start))]
        out += [VectorRow(f"r{start + i}", "default", f"user_{(start + i) % users}", "s", "L0",
                          v) for i, v in enumerate(embedder.embed(texts))]
    return out


def write(index: VectorIndex, rows: list[VectorRow]) -> None:
    for i in range(0, len(rows), 500):  # the indexer's batches are about this size
        index.upsert(rows[i:i + 500])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(header("ANN recall"), flush=True)
    workload, embedder = Workload(SEED), LocalMiniLM()
    root = Path(tempfile.mkdtemp(prefix="memorose-ann-"))
    started = time.perf_counter()
    rows = rows_of(workload, embedder, 0, args.rows, args.users)
    more = rows_of(workload, embedder, args.rows, args.rows // 5, args.users)
    questions = []
    for _ in range(args.queries):
        user, text = workload.query()
        questions.append((f"user_{int(user.split('_')[1]) % args.users}",
                          embedder.embed([text])[0]))
    embed_s = time.perf_counter() - started
    lines = []
    try:
        for name in args.index:
            index = VectorIndex(root / name, embedder.dim, embedder.name, ann=name)
            write(index, rows)
            build_s = cpu_and_wall(index.optimize)
            write(index, more)
            grow_s = cpu_and_wall(index.optimize)
            recall: dict[int, list[float]] = {10: [], 30: []}
            latency: dict[str, list[float]] = {"ann": [], "exact": []}
            for user, vector in questions:
                for limit in (10, 30):
                    t0 = time.perf_counter()
                    ann = {h.id for h in index.search_table(vector, "default", user, limit)}
                    t1 = time.perf_counter()
                    exact = {h.id for h in index.search_table(vector, "default", user, limit,
                                                            exact=True)}
                    t2 = time.perf_counter()
                    recall[limit].append(len(ann & exact) / max(len(exact), 1))
                    if limit == 30:
                        latency["ann"].append((t1 - t0) * 1000)
                        latency["exact"].append((t2 - t1) * 1000)
            if not lines:
                p50, p99 = percentiles(latency["exact"], (50, 99))
                lines.append(f"| exact flat scan (baseline) | 1.000 | 1.000 | {p50:.1f} / "
                             f"{p99:.1f} | - | - |")
            p50, p99 = percentiles(latency["ann"], (50, 99))
            lines.append(f"| {name}{' (the node)' if name == DEFAULT_ANN else ''} "
                         f"| {np.mean(recall[10]):.3f} | {np.mean(recall[30]):.3f} "
                         f"| {p50:.1f} / {p99:.1f} | {build_s} | {grow_s} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = args.rows + len(more)
    print(f"{total:,} rows ({total // args.users:,} per user) embedded in {embed_s:.1f} s\n")
    print("| search (one user, prefiltered) | recall@10 vs exact | recall@30 vs exact "
          f"| p50 / p99 ms (k=30) | build at {args.rows:,} rows | optimize after "
          f"{len(more):,} more |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    return 0


def cpu_and_wall(work) -> str:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return f"{time.perf_counter() - wall:.1f} s ({time.process_time() - cpu:.1f} s CPU)"


if __name__ == "__main__":
    sys.exit(main())
