"""ANN recall: the LanceDB vector index (IVF-HNSW-SQ, per-user prefilter) against an exact scan.

    python bench/ann_recall.py [--rows 30000] [--users 100] [--queries 200]

Embeds ``--rows`` sentences of the ingest bench's workload with the node's MiniLM, spread over
``--users`` users, writes them through the node's ``VectorIndex`` and builds its ANN index the
way the indexer does (``optimize``). Then, for ``--queries`` queries of that workload, compares
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

from memorose_dagster.index.vectors import ANN_MIN_ROWS, VectorIndex, VectorRow  # noqa: E402
from memorose_dagster.models.embedding import LocalMiniLM  # noqa: E402

SEED = 11


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=30_000,
                        help=f"vectors to index (the ANN index is built from {ANN_MIN_ROWS:,})")
    parser.add_argument("--users", type=int, default=100, help="users the rows belong to")
    parser.add_argument("--queries", type=int, default=200, help="queries to compare")
    args = parser.parse_args(argv)
    if args.rows < ANN_MIN_ROWS:
        parser.error(f"--rows must be at least {ANN_MIN_ROWS:,}: below that there is no index")
    if args.users < 1 or args.queries < 1:
        parser.error("--users and --queries must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(header("ANN recall"), flush=True)
    workload, embedder = Workload(SEED), LocalMiniLM()
    root = Path(tempfile.mkdtemp(prefix="memorose-ann-"))
    try:
        index = VectorIndex(root / "lancedb", embedder.dim, embedder.name)
        started = time.perf_counter()
        for first in range(0, args.rows, 1000):
            texts = [workload.sentence() for _ in range(min(1000, args.rows - first))]
            vectors = embedder.embed(texts)
            index.upsert([VectorRow(f"r{first + i}", "default", f"user_{(first + i) % args.users}",
                                    "s", "L0", v) for i, v in enumerate(vectors)])
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        index.optimize()
        build_s = time.perf_counter() - started
        recall = {10: [], 30: []}
        latency = {"ann": [], "exact": []}
        for _ in range(args.queries):
            user, text = workload.query()
            user = f"user_{int(user.split('_')[1]) % args.users}"
            vector = embedder.embed([text])[0]
            for limit in (10, 30):
                t0 = time.perf_counter()
                ann = {h.id for h in index.search(vector, "default", user, limit)}
                t1 = time.perf_counter()
                exact = {h.id for h in index.search(vector, "default", user, limit, exact=True)}
                t2 = time.perf_counter()
                recall[limit].append(len(ann & exact) / max(len(exact), 1))
                if limit == 30:
                    latency["ann"].append((t1 - t0) * 1000)
                    latency["exact"].append((t2 - t1) * 1000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_user = args.rows // args.users
    print(f"{args.rows:,} rows ({per_user:,} per user) embedded and written in {embed_s:.1f} s; "
          f"ANN index built in {build_s:.1f} s\n")
    print("| search (one user, prefiltered) | recall@10 vs exact | recall@30 vs exact "
          "| p50 / p99 ms (k=30) |")
    print("| --- | --- | --- | --- |")
    for name in ("exact", "ann"):
        p50, p99 = percentiles(latency[name], (50, 99))
        r10 = 1.0 if name == "exact" else float(np.mean(recall[10]))
        r30 = 1.0 if name == "exact" else float(np.mean(recall[30]))
        label = "exact flat scan (baseline)" if name == "exact" else "IVF-HNSW-SQ index"
        print(f"| {label} | {r10:.3f} | {r30:.3f} | {p50:.1f} / {p99:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
