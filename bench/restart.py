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
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from history import History
from ingest_retrieve import (
    REQUEST_TIMEOUT,
    NodeProcess,
    Row,
    format_table,
    header,
    load_average,
    percentiles,
    progress,
)
from retrieve_clients import FRESH_EVENTS, Questions, ask

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
    node = NodeProcess(root / "node", root / "node-restart.log")
    node.port, node.raft_port = json.loads((root / "ports.json").read_text())
    node.url = node.url.rsplit(":", 1)[0] + f":{node.port}"
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("store", help="a directory kept by realistic.py --keep")
    parser.add_argument("--events", type=int, default=100_000, help="the store's size (100000)")
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=300, help="questions per row (300)")
    parser.add_argument("--rounds", type=int, default=2, help="rows per setting (2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.store)
    if not (root / "ports.json").exists():
        print(f"{root} is not a store kept by realistic.py --keep", file=sys.stderr)
        return 2
    print(header("restart"), flush=True)
    questions = Questions(History(args.events + FRESH_EVENTS, args.users, args.seed))
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
