"""A retrieve's stages over a kept store, with its lexical side beside the embedding and in turn.

Over a store kept by ``realistic.py --keep DIR`` (its 100k events with their memories), one
node in this process answers distinct real-length questions (``history.py``), one client or
several side by side. A retrieve looks up the entities its question names and runs BM25 on a
worker while the asking thread embeds the question, unless another retrieve is under way
(``memorose_dagster/node/retrieval.py``). The baseline, in the same run, alternating with it (per
question with one client, ABBA by round with several): the same node running those two stages
first on the asking thread, as it did before.

Each row gives the latency of the retrieve call (no HTTP) and each stage's p50 / p99 from its
``timings``; ``embed`` is what of the embedding the lexical side did not cover.

    python bench/realistic.py --big --queries 300 --keep DIR     # once: the 100k store
    python bench/retrieve_stages.py DIR                          # 1 client, then 2
    python bench/retrieve_stages.py DIR --clients 1 --queries 2000
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ingest_retrieve import (
    BenchError,
    Row,
    format_table,
    header,
    load_average,
    percentiles,
    progress,
)
from retrieve_clients import WARMUP, Questions, kept_questions, store_parser

from api import collector
from memorose_dagster.models import blas
from memorose_dagster.node.node import Node
from memorose_dagster.node.retrieval import STAGES
from memorose_dagster.settings import Settings

AS_SERVED = "lexical beside the embedding (as served)"
BASELINE = "baseline: lexical in turn"
TENANT = "default"


class Timed:
    """Every answer's milliseconds, and those of each stage, under one setting."""

    def __init__(self) -> None:
        self.total: list[float] = []
        self.stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.seconds = 0.0
        self._lock = threading.Lock()

    def ask(self, node: Node, user: str, question: str) -> None:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        node.retrieve(TENANT, user, question, 10, timings=timings)
        took = (time.perf_counter() - started) * 1000
        with self._lock:
            self.total.append(took)
            for stage in STAGES:
                self.stages[stage].append(timings.get(stage, 0.0))

    def row(self, label: str) -> Row:
        p50, p95, p99 = percentiles(self.total)
        n = len(self.total)
        parts = []
        for stage in STAGES:
            s50, s99 = percentiles(self.stages[stage], (50, 99))
            parts.append(f"{stage} {s50:.2f}/{s99:.2f}")
        return Row(label, n, self.seconds,
                   f"{n / self.seconds:6.1f} q/s | p50 {p50:.2f} / p95 {p95:.2f} / "
                   f"p99 {p99:.2f} ms", "stages p50/p99: " + ", ".join(parts))


def open_node(root: Path) -> Node:
    port, raft_port = json.loads((root / "ports.json").read_text())
    settings = Settings.from_env(home=root / "node", port=port, raft_port=raft_port,
                                 host="127.0.0.1")
    node = Node(settings)
    node.wait_ready()
    return node


def one_client(node: Node, questions: list[tuple[str, str]]) -> dict[str, Timed]:
    """Settings alternating per question (ABBA), so that both meet the same host."""
    timed = {AS_SERVED: Timed(), BASELINE: Timed()}
    for i, (user, question) in enumerate(questions):
        label = (AS_SERVED, BASELINE, BASELINE, AS_SERVED)[i % 4]
        node.retriever.lexical_beside = label == AS_SERVED
        started = time.perf_counter()
        timed[label].ask(node, user, question)
        timed[label].seconds += time.perf_counter() - started
    node.retriever.lexical_beside = True
    return timed


def side_by_side(node: Node, clients: int, rounds: int, per_round: int,
                 questions: Questions) -> dict[str, Timed]:
    """``clients`` threads at once; settings alternating per round (ABBA)."""
    timed = {AS_SERVED: Timed(), BASELINE: Timed()}
    failures: list[BaseException] = []
    for round_number in range(rounds):
        for label in ((AS_SERVED, BASELINE) if round_number % 2 == 0 else (BASELINE, AS_SERVED)):
            node.retriever.lexical_beside = label == AS_SERVED
            parts = [questions.take(per_round // clients) for _ in range(clients)]

            def run(part: list[tuple[str, str]], into: Timed = timed[label]) -> None:
                try:
                    for user, question in part:
                        into.ask(node, user, question)
                except BaseException as exc:  # noqa: BLE001 - reported once the others are done
                    failures.append(exc)

            threads = [threading.Thread(target=run, args=(part,)) for part in parts]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            timed[label].seconds += time.perf_counter() - started
            if failures:
                raise BenchError(f"a client failed: {failures[0]!r}")
    node.retriever.lexical_beside = True
    return timed


def parse_args(argv: Sequence[str] | None):
    parser = store_parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", default="1,2", help="client counts (1,2)")
    parser.add_argument("--queries", type=int, default=1200,
                        help="questions per client count, both settings (1200)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    questions = kept_questions(args)
    if questions is None:
        return 2
    print(header("retrieve stages"), flush=True)
    progress("opening the kept store")
    node = open_node(Path(args.store))
    try:
        for persona in questions.history.personas:  # their vectors load into memory
            node.retrieve(TENANT, persona.user_id, f"what about {persona.name}?", 10)
        for user, question in questions.take(WARMUP):
            node.retrieve(TENANT, user, question, 10)
        gc.collect()
        gc.freeze()  # as a served node does after its start (api/app.py, api/collector.py)
        collector.freeze_survivors()
        blas.one_thread()
        rows: list[Row] = []
        for clients in (int(c) for c in args.clients.split(",")):
            progress(f"{clients} client(s), {args.queries} questions")
            if clients == 1:
                timed = one_client(node, questions.take(args.queries))
            else:
                timed = side_by_side(node, clients, 4, args.queries // 8, questions)
            rows += [timed[label].row(f"{clients} client(s), {label}")
                     for label in (AS_SERVED, BASELINE)]
        print(format_table(rows))
        print(f"load avg at end {load_average()}")
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
