"""A user's vector search right after a write, against the same search with no write before it.

The node keeps each asked user's vectors in memory (``index/user_vectors.py``); the pipeline
writes new rows for a user while the user's agent keeps asking. Each question here is one
search over one user's rows (``--rows``, 384-d unit vectors, a third each L0/L1/L2), in turns:
a search alone (the baseline, same run), then a write of ``--writes`` rows followed by a search
(what a question pays right after the pipeline wrote). Everything in one process, no I/O: the
rows come from a list standing for the LanceDB table.

    python bench/vector_view.py                    # 5,200 rows (a user of a 100k-event store)
    python bench/vector_view.py --rows 50000 --writes 10
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
from ingest_retrieve import Row, format_table, header, percentiles

from memorose_dagster.index.user_vectors import UserVectors

DIM = 384


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=5200)
    parser.add_argument("--writes", type=int, default=1, help="rows written before a search")
    parser.add_argument("--questions", type=int, default=500)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(header("vector view"), flush=True)
    rng = np.random.default_rng(11)

    def unit(n: int) -> np.ndarray:
        values = rng.normal(size=(n, DIM)).astype(np.float32)
        return values / np.linalg.norm(values, axis=1, keepdims=True)

    layers = ("L0", "L1", "L2")
    table = [(f"r{i}", layers[i % 3], "s", v) for i, v in enumerate(unit(args.rows))]
    view = UserVectors(DIM, lambda tenant, user: table, max_rows=10 * args.rows + 1000)
    queries = unit(2 * args.questions)
    started = time.perf_counter()
    view.search(queries[0], "t", "u", 30, None, None)
    load_ms = (time.perf_counter() - started) * 1000
    alone: list[float] = []
    after_write: list[float] = []
    written = 0
    for i in range(args.questions):
        started = time.perf_counter()
        view.search(queries[2 * i], "t", "u", 30, None, None)
        alone.append((time.perf_counter() - started) * 1000)
        rows = [("t", "u", f"new{written + j}", layers[j % 3], "s", v)
                for j, v in enumerate(unit(args.writes))]
        written += args.writes
        started = time.perf_counter()
        view.upsert(rows)
        view.search(queries[2 * i + 1], "t", "u", 30, None, None)
        after_write.append((time.perf_counter() - started) * 1000)
    rows_out = [Row(f"first search: load {args.rows:,} rows", 1, load_ms / 1000,
                    f"{load_ms:.1f} ms", "the view built from the table's rows")]
    for label, times in (("search alone (baseline)", alone),
                         (f"write {args.writes} row(s), then search", after_write)):
        p50, p95, p99 = percentiles(times)
        rows_out.append(Row(label, len(times), sum(times) / 1000,
                            f"p50 {p50:.2f} / p95 {p95:.2f} / p99 {p99:.2f} ms",
                            f"{args.rows:,} rows growing to {args.rows + written:,}"))
    print(format_table(rows_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
