"""A restarted node's first questions: with the warm-up a node runs as it starts, and without.

Over a store kept by ``realistic.py --keep DIR`` (its 100k events with their memories), each
row starts ``memorose serve`` on it after giving the store's file pages back to the OS
(``posix_fadvise(DONTNEED)`` on the node's own files: what a node meets after a reboot, or on
this VM after an hour), and asks as soon as ``/health`` answers, one client:

* one first question per user (each user's vectors come into memory: from the table, or from
  what the warm-up loaded);
* then distinct real-length questions (``history.py``; never one asked before in the run).

The warm-up (``Node._warm``): the records a retrieve reads into RocksDB's block cache, then the
vectors of the users who wrote last. The baseline, in the same run, alternating with it (ABBA):
the same node with ``MEMOROSE_WARM_STORE=0``.

    python bench/realistic.py --big --queries 300 --keep DIR     # once: the 100k store
    python bench/restart.py DIR                                  # 2 rounds of 300 questions
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from ingest_retrieve import (
    REQUEST_TIMEOUT,
    Row,
    format_table,
    header,
    load_average,
    percentiles,
    progress,
)
from retrieve_clients import Questions, ask, kept_node, kept_questions, store_parser

CONFIGS = {"warm-up (as served)": "1", "baseline: no warm-up": "0"}


def give_back_pages(home: Path) -> int:
    """Drop the page cache's copy of every file under ``home`` (only ours); bytes of files."""
    total = 0
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                total += os.fstat(fd).st_size
            finally:
                os.close(fd)
    return total


def measure(root: Path, warm: str, queries: int, questions: Questions,
            ) -> tuple[float, list[float], list[float]]:
    """(seconds to /health, first question per user ms, later questions ms)."""
    give_back_pages(root / "node")
    node = kept_node(root, "node-restart.log")
    saved = os.environ.get("MEMOROSE_WARM_STORE")
    os.environ["MEMOROSE_WARM_STORE"] = warm
    try:
        started = node.start()
    finally:
        if saved is None:
            del os.environ["MEMOROSE_WARM_STORE"]
        else:
            os.environ["MEMOROSE_WARM_STORE"] = saved
    try:
        with httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
            firsts = [ask(client, persona.user_id, f"what about {persona.name}?")
                      for persona in questions.history.personas]
            later = [ask(client, user, question) for user, question in questions.take(queries)]
        return started, firsts, later
    finally:
        node.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = store_parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--queries", type=int, default=300, help="questions per row (300)")
    parser.add_argument("--rounds", type=int, default=2, help="rows per setting (2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    questions = kept_questions(args)
    if questions is None:
        return 2
    root = Path(args.store)
    print(header("restart"), flush=True)
    rows: list[Row] = []
    for round_number in range(1, args.rounds + 1):
        order = list(CONFIGS.items())[::1 if round_number % 2 else -1]  # ABBA
        for label, warm in order:
            progress(f"round {round_number}: {label}")
            begun = time.perf_counter()
            started, firsts, later = measure(root, warm, args.queries, questions)
            p50, _, _ = percentiles(firsts)
            rows.append(Row(f"{label}: first per user", len(firsts), sum(firsts) / 1000,
                            f"p50 {p50:.1f} / max {max(firsts):.1f} ms",
                            f"asked at once after /health ({started:.1f} s to start)"))
            p50, p95, p99 = percentiles(later)
            rows.append(Row(f"{label}: then distinct", len(later), sum(later) / 1000,
                            f"p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms",
                            f"round {round_number}, {time.perf_counter() - begun:.0f} s"))
    print(format_table(rows))
    print(f"load avg at end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
