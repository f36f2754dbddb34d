"""Retrieve by the number of clients side by side, with the node's CPU per question.

Over a store kept by ``realistic.py --keep DIR`` (its 100k events with their memories), a fresh
``memorose serve`` per row. Each client is a thread with its own keep-alive connection asking
distinct real-length questions (``history.py``; never one asked before in the run, so the
node's cache of question vectors never answers). Each row gives questions/s, the client
latency, and the node's CPU over the row (from ``/proc``): per question and in cores.

The baseline, in the same run, alternating with it (ABBA): the same node with numpy's OpenBLAS left
on every core (``OPENBLAS_NUM_THREADS`` set to the core count), as it was before a served node
put it on one thread (``memorose_dagster/models/blas.py``).

    python bench/realistic.py --big --queries 300 --keep DIR     # once: the 100k store
    python bench/retrieve_clients.py DIR                         # 1, 2, 4 clients, 2 rounds
    python bench/retrieve_clients.py DIR --clients 2 --queries 300 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from history import History
from ingest_clients import cpu_seconds
from ingest_retrieve import (
    REQUEST_TIMEOUT,
    BenchError,
    NodeProcess,
    Row,
    format_table,
    header,
    load_average,
    percentiles,
    progress,
)

FRESH_EVENTS = 400  # realistic.py's history runs this far past the store
WARMUP = 25  # questions before the timed ones, after one per user (their vectors load)
CONFIGS = {"one BLAS thread (as served)": None,
           "baseline: BLAS on every core": str(os.cpu_count() or 2)}


class Questions:
    """Distinct questions across the whole run."""

    def __init__(self, history: History):
        self.history = history
        self.asked: set[tuple[str, str]] = set()

    def take(self, n: int) -> list[tuple[str, str]]:
        return self.history.questions(n, seed=len(self.asked), asked=self.asked)


def kept_node(root: Path, log_name: str) -> NodeProcess:
    """A ``memorose serve`` for the store ``realistic.py --keep`` left in ``root``, on its ports
    (the node keeps its Raft address)."""
    node = NodeProcess(root / "node", root / log_name)
    node.port, node.raft_port = json.loads((root / "ports.json").read_text())
    node.url = node.url.rsplit(":", 1)[0] + f":{node.port}"
    return node


def store_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of a bench over a kept store: the store, and its history's shape."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("store", help="a directory kept by realistic.py --keep")
    parser.add_argument("--events", type=int, default=100_000, help="the store's size (100000)")
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    return parser


def kept_questions(args: argparse.Namespace) -> Questions | None:
    """The questions over the kept store ``args.store``; None (and a message) if it is not one."""
    root = Path(args.store)
    if not (root / "ports.json").exists():
        print(f"{root} is not a store kept by realistic.py --keep", file=sys.stderr)
        return None
    return Questions(History(args.events + FRESH_EVENTS, args.users, args.seed))


def ask(client: httpx.Client, user: str, question: str) -> float:
    sent = time.perf_counter()
    response = client.post("/api/v1/retrieve",
                           json={"user_id": user, "query": question, "top_k": 10})
    if response.status_code != 200:
        raise BenchError(f"POST /api/v1/retrieve: HTTP {response.status_code}: "
                         f"{response.text[:300]}")
    return (time.perf_counter() - sent) * 1000


def measure(root: Path, blas_threads: str | None, clients: int, per_client: int,
            questions: Questions) -> tuple[float, list[float], float]:
    """(seconds, client ms of every question, node CPU seconds) of ``clients`` side by side."""
    node = kept_node(root, "node-clients.log")
    saved = os.environ.pop("OPENBLAS_NUM_THREADS", None)
    if blas_threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = blas_threads
    try:
        node.start()
    finally:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)
        if saved is not None:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    try:
        warm = httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT)
        for persona in questions.history.personas:  # their vectors load into memory
            ask(warm, persona.user_id, f"what about {persona.name}?")
        for user, question in questions.take(WARMUP):
            ask(warm, user, question)
        node.wait_warm()  # the timed questions meet a node whose start-up reads are done
        parts = [questions.take(per_client) for _ in range(clients)]
        latencies: list[float] = []
        failures: list[BaseException] = []

        def run(part: list[tuple[str, str]]) -> None:
            try:
                with httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT) as client:
                    latencies.extend(ask(client, user, question) for user, question in part)
            except BaseException as exc:  # noqa: BLE001 - reported once the others are done
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(part,)) for part in parts]
        cpu_before, started = cpu_seconds(node.pid), time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds, cpu = time.perf_counter() - started, cpu_seconds(node.pid) - cpu_before
        if failures:
            raise BenchError(f"a client failed: {failures[0]!r}")
        return seconds, latencies, cpu
    finally:
        node.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = store_parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", default="1,2,4", help="client counts (1,2,4)")
    parser.add_argument("--queries", type=int, default=200, help="questions per row (200)")
    parser.add_argument("--rounds", type=int, default=2, help="rows per count and setting (2)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    questions = kept_questions(args)
    if questions is None:
        return 2
    root = Path(args.store)
    print(header("retrieve clients"), flush=True)
    rows: list[Row] = []
    for clients in (int(c) for c in args.clients.split(",")):
        for round_number in range(1, args.rounds + 1):
            # ABBA: neither setting always runs first (a first node meets a colder page cache).
            order = list(CONFIGS.items())[::1 if round_number % 2 else -1]
            for label, blas_threads in order:
                progress(f"{clients} clients, round {round_number}: {label}")
                seconds, latencies, cpu = measure(root, blas_threads, clients,
                                                  max(1, args.queries // clients), questions)
                p50, p95, p99 = percentiles(latencies)
                n = len(latencies)
                rows.append(Row(f"{clients} clients, {label}", n, seconds,
                                f"{n / seconds:6.1f} q/s | p50 {p50:.1f} / p95 {p95:.1f} / "
                                f"p99 {p99:.1f} ms",
                                f"node CPU {cpu / n * 1000:.1f} ms a question, "
                                f"{cpu / seconds:.2f} cores"))
    print(format_table(rows))
    print(f"load avg at end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
