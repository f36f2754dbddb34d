"""Memorose at real sizes: conversational histories ingested, fully derived and asked, one table.

One run against a real node (``memorose serve`` in a subprocess, as ``ingest_retrieve.py``
starts it), with a history from ``history.py`` (many users, multi-session, facts that change,
filler; seeded):

* batched ingest of the history (500 events a batch, 2 clients, as ``ingest_retrieve.py``);
* retrieve with real-length questions before anything is derived (events only, no vectors);
* derivation: the memory assets (``l0_events``, ``l1_memories``, ``memory_graph``,
  ``l2_insights``) materialized in this process with the HTTP ``ClusterResource``, one run per
  log range of about ``--run-events`` events (what the log sensor hands out under a steady
  load), until every range is derived and the node has indexed everything: the time until the
  pipeline has settled, events/s, and each asset's share;
* the bound, in the same process: embedding the same texts (the store's events', memories' and
  insights' as derived, each once) with the same model, nothing else, as events/s of the whole
  store; the derivation row compares the whole store's derivation time with it;
* retrieve after derivation: one first question per user (it loads the user's vectors into the
  node's memory), then distinct questions with memories (all layers) and over events only
  (``layers=["L0"]``);
* at the end, fresh runs: one user's next session ingested and derived in a run of its own (as
  the fresh lane runs a trickle; no later chunk to defer to, so the run derives the user's graph
  and insights over the whole history), for 5 users, each with an empty entity cache as a run
  of ``memorose up`` starts with.

``--big`` does it again after growing the store to 100k events (the 90k new events derived the
same way), so the table shows whether derivation and retrieve scale with the new work or with
the history.

    python bench/realistic.py              # 10k events, 25 users
    python bench/realistic.py --big        # then 100k
    python bench/realistic.py --events 2000 --queries 50   # smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
from history import History
from ingest_retrieve import (
    BATCH,
    BATCH_THREADS,
    REQUEST_TIMEOUT,
    BenchError,
    NodeProcess,
    Row,
    format_table,
    header,
    load_average,
    percentiles,
    post,
    progress,
    run_parallel,
)

from assets import ALL_ASSETS
from memorose_dagster.models.ner import entity_extractor
from memorose_dagster.models.provider import make_embedder
from memorose_dagster.pipeline.asset_keys import MEMORY_ASSETS
from memorose_dagster.pipeline.partitions import range_run_config
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

TOP_K = 10
WARMUP = 5
BOUND_SAMPLE = 4000  # texts embedded for the bound; the rate is scaled to all of them
FRESH_USERS = 5  # fresh runs at the end: one user's next session each
FRESH_EVENTS = 400  # enough of the history past the last stage for their sessions
ASSET_NAMES = [key.to_python_identifier() for key in MEMORY_ASSETS]
MEMORY_JOB_ASSETS = [a for a in ALL_ASSETS if a.key in MEMORY_ASSETS]


class Realistic:
    def __init__(self, node: NodeProcess, args: argparse.Namespace):
        self.node, self.args = node, args
        self.client = httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT)
        size = args.big_events if args.big else args.events
        # The events past the last stage are the next sessions: the fresh runs' new work.
        self.history = History(size + FRESH_EVENTS, args.users, args.seed)
        self.events = self.history.events()
        self.stored = 0
        self.batches: list[tuple[int, int]] = []  # (log index, events) of every ingest batch
        self.derived_to = 0  # log index through which the pipeline has run
        self.profile = cProfile.Profile() if args.profile else None
        self.asked: set[tuple[str, str]] = set()
        self.settled = 0.0  # seconds of derivation so far, every stage

    def close(self) -> None:
        self.client.close()

    def ingest_to(self, size: int) -> Row:
        chunk = self.events[self.stored:size]
        # The bodies are serialized before the clock starts (as ingest_clients.py does): the
        # row measures the node, not the clients' JSON encoding on the same 2 cores.
        batches = [(json.dumps({"events": chunk[i:i + BATCH]}).encode(),
                    len(chunk[i:i + BATCH])) for i in range(0, len(chunk), BATCH)]

        def send(client: httpx.Client, batch: tuple[bytes, int]) -> int:
            resp = client.post("/api/v1/events/batch", content=batch[0],
                               headers={"content-type": "application/json"})
            if resp.status_code != 201:
                raise BenchError(f"POST /api/v1/events/batch: HTTP {resp.status_code}: "
                                 f"{resp.text[:300]}")
            index = resp.json()["log_index"]
            self.batches.append((index, batch[1]))
            return index

        clients = [httpx.Client(base_url=self.node.url, timeout=REQUEST_TIMEOUT)
                   for _ in range(BATCH_THREADS)]
        try:
            seconds, _ = run_parallel(clients, batches, send)
        finally:
            for client in clients:
                client.close()
        self.stored = size
        return Row(f"ingest to {size:,} (batch {BATCH} x{BATCH_THREADS})", len(chunk), seconds,
                   f"{len(chunk) / seconds:,.0f} ev/s",
                   f"{self.args.users} users, avg {avg_chars(chunk):.0f} chars")

    def ranges(self) -> list[tuple[int, int, int]]:
        """(after, until, events) log ranges of about ``--run-events`` events not yet derived."""
        out, after, count = [], self.derived_to, 0
        for index, n in sorted(b for b in self.batches if b[0] > self.derived_to):
            count += n
            if count >= self.args.run_events:
                out.append((after, index, count))
                after, count = index, 0
        if count:
            out.append((after, max(i for i, _ in self.batches), count))
        return out

    def derive(self) -> list[Row]:
        """One in-process run of the memory assets per range; then wait for the index."""
        ranges = self.ranges()
        events = sum(n for _, _, n in ranges)
        per_asset = dict.fromkeys(ASSET_NAMES, 0.0)
        made = dict.fromkeys(ASSET_NAMES, 0)
        embedded = dict.fromkeys(ASSET_NAMES, 0)
        started = time.perf_counter()
        for number, (after, until, n) in enumerate(ranges, 1):
            t0 = time.perf_counter()
            if self.profile is not None:
                self.profile.enable()
            try:
                # A backlog's chunks, as the log sensor requests a bulk load's: the graph
                # and insights of a user with more to come wait for a later chunk.
                result = self.materialize(after, until, horizon=ranges[-1][1])
            finally:
                if self.profile is not None:
                    self.profile.disable()
            check_run(result)
            for name in ASSET_NAMES:
                (mat,) = result.asset_materializations_for_node(name)
                per_asset[name] += float(mat.metadata["seconds"].value)
                made[name] += int(mat.metadata["records_out"].value)
                done = mat.metadata.get("embedded", mat.metadata["records_out"]).value
                embedded[name] += int(done) if name != "memory_graph" else 0
            steps = " ".join(
                f"{name.split('_')[-1]} {float(m.metadata['seconds'].value):.1f}s"
                + (f" ({int(m.metadata['users_deferred'].value)} users deferred)"
                   if "users_deferred" in m.metadata else "")
                for name in ASSET_NAMES for m in result.asset_materializations_for_node(name))
            progress(f"  run {number}/{len(ranges)}: log ({after}, {until}], {n} events, "
                     f"{time.perf_counter() - t0:.1f}s: {steps}")
            self.derived_to = until
        runs_s = time.perf_counter() - started
        waited = self.wait_indexed()
        settled = runs_s + waited
        rows = [Row(f"derive to {self.stored:,}: settled", events, settled,
                    f"{events / settled:,.1f} ev/s",
                    f"{len(ranges)} runs of <= ~{self.args.run_events:,} events; "
                    f"index wait {waited:.1f}s")]
        for name, seconds in per_asset.items():
            rows.append(Row(f"  {name}", events, seconds, f"{seconds / settled:.0%} of settled",
                            f"asset body: {made[name]:,} records out, "
                            f"{embedded[name]:,} texts embedded"))
        other = settled - sum(per_asset.values())
        rows.append(Row("  dagster + wait", events, other, f"{other / settled:.0%} of settled",
                        "run start, steps, checks, index wait"))
        return rows

    def materialize(self, after: int, until: int, horizon: int = 0,
                    ) -> dg.ExecuteInProcessResult:
        """One run of the memory assets over the log range (after, until], in this process."""
        return dg.materialize(
            MEMORY_JOB_ASSETS, raise_on_error=False,
            resources={"cluster": ClusterResource(urls=self.node.url, timeout=REQUEST_TIMEOUT),
                       "model": ModelResource()},
            partition_key=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            run_config={**range_run_config(after, until, horizon=horizon),
                        "loggers": {"console": {"config": {"log_level": "WARNING"}}}})

    def fresh_runs(self) -> list[Row]:
        """A user's next session, ingested and derived in a run of its own, as the log sensor's
        fresh lane runs a trickle, for ``FRESH_USERS`` users: over the whole store, a run
        derives the user's graph and insights over the user's whole history. Each run starts
        with an empty entity cache, as a run of ``memorose up`` does (a process of its own)."""
        sessions: dict[str, list[dict[str, Any]]] = {}
        for event in self.events[self.stored:]:
            if event["user_id"] in sessions or len(sessions) < FRESH_USERS:
                session = sessions.setdefault(event["user_id"], [])
                if not session or session[0]["stream_id"] == event["stream_id"]:
                    session.append(event)
        runs, steps = [], dict.fromkeys(ASSET_NAMES, 0.0)
        for session in sessions.values():
            after = self.client.get("/api/v1/cluster/status").json()["applied_index"]
            until = post(self.client, "/api/v1/events/batch", {"events": session}, 201)[
                "log_index"]
            entity_extractor()._cache.clear()  # noqa: SLF001 - a run's new process has none
            started = time.perf_counter()
            result = self.materialize(after, until)
            runs.append(time.perf_counter() - started)
            check_run(result)
            for name in ASSET_NAMES:
                (mat,) = result.asset_materializations_for_node(name)
                steps[name] += float(mat.metadata["seconds"].value) / len(sessions)
            progress(f"  fresh run {len(runs)}/{len(sessions)}: {len(session)} events, "
                     f"{runs[-1]:.1f}s")
        self.wait_indexed()
        p50, = percentiles(runs, (50,))
        per_step = " / ".join(f"{steps[name]:.2f}" for name in ASSET_NAMES)
        return [Row(f"fresh run @{self.stored:,}: one user's next session", len(runs),
                    sum(runs), f"p50 {p50:.2f} / max {max(runs):.2f} s",
                    f"a run each, entity cache empty; mean s events / memories / graph / "
                    f"insights {per_step}")]

    def wait_indexed(self, deadline_s: float = 600.0) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < deadline_s:
            self.node.check_alive()
            status = self.client.get("/api/v1/cluster/status").json()
            if status["indexed_index"] >= status["applied_index"]:
                return time.perf_counter() - started
            time.sleep(0.2)
        raise BenchError("node not indexed in time")

    def texts(self) -> list[str]:
        """What the pipeline must embed at least: every event, memory and insight, once."""
        out = [e["content"] for e in self.events[:self.stored]]
        for persona in self.history.personas:
            for kind in ("l1", "l2"):
                body = self.client.get("/api/v1/admin/records",
                                       params={"kind": kind, "user_id": persona.user_id})
                body.raise_for_status()
                out += [r["content"] for r in body.json()["records"]]
        return out

    def bound(self) -> Row:
        """Embedding-only throughput of the same texts, same model, same process: every text
        the store's derivation had to embed at least, against the whole store's events."""
        texts = self.texts()
        sample = random.Random(3).sample(texts, min(BOUND_SAMPLE, len(texts)))
        embedder = ModelResource().embedder()
        embedder.embed(["warm-up"])
        started = time.perf_counter()
        embedder.embed(sample)
        rate = len(sample) / (time.perf_counter() - started)
        seconds = len(texts) / rate
        return Row(f"bound: embed only @{self.stored:,}", self.stored, seconds,
                   f"{self.stored / seconds:,.1f} ev/s",
                   f"{len(texts):,} texts (events + L1 + L2) at {rate:,.0f} texts/s "
                   f"({len(sample):,} sampled), {embedder.name}")

    def first_questions(self) -> Row:
        """One question per user, before the timed ones: a user's first question after a
        start (or after the user's vectors left memory) loads them from LanceDB."""
        times = []
        for number in range(len(self.history.personas)):
            ((user, question),) = self.history.questions(1, seed=len(self.asked),
                                                         asked=self.asked, user=number)
            sent = time.perf_counter()
            post(self.client, "/api/v1/retrieve",
                 {"user_id": user, "query": question, "top_k": TOP_K}, 200)
            times.append((time.perf_counter() - sent) * 1000)
        p50, p95 = percentiles(times, (50, 95))
        return Row(f"retrieve @{self.stored:,} first per user", len(times), sum(times) / 1000,
                   f"p50 {p50:.1f} / p95 {p95:.1f} / max {max(times):.1f} ms",
                   "client; the user's vectors are loaded into memory on the way")

    def wait_warm(self, started: float) -> Row:
        """Until the restarted node's warm-up has read what a retrieve reads (``/health``
        ``caches``: ``warming``, then ``warm``); the rows after it measure a warm node."""
        caches = self.node.wait_warm()
        return Row("caches warm (/health)", 0, time.perf_counter() - started, "-",
                   f"caches {caches}; seconds since the node's start")

    def retrieve(self, label: str, layers: list[str] | None) -> list[Row]:
        # Distinct questions, never asked before in this run: the node caches query vectors,
        # and a repeated question would measure the cache.
        questions = self.history.questions(self.args.queries + WARMUP, seed=len(self.asked),
                                           asked=self.asked)
        floor = self.question_floor(questions[WARMUP:])
        client_ms, server_ms, hits = [], [], 0
        stages: dict[str, list[float]] = {}
        for i, (user, question) in enumerate(questions):
            body = {"user_id": user, "query": question, "top_k": TOP_K}
            if layers:
                body["layers"] = layers
            sent = time.perf_counter()
            response = self.client.post("/api/v1/retrieve", json=body)
            if response.status_code != 200:
                raise BenchError(f"POST /api/v1/retrieve: HTTP {response.status_code}: "
                                 f"{response.text[:300]}")
            answer = response.json()
            if i < WARMUP:
                continue
            client_ms.append((time.perf_counter() - sent) * 1000)
            server_ms.append(float(answer["took_ms"]))
            hits += len(answer["results"])
            for part in response.headers.get("server-timing", "").split(", "):
                name, _, ms = part.partition(";dur=")
                if ms and name != "total":
                    stages.setdefault(name, []).append(float(ms))
        p50, p95, p99 = percentiles(client_ms)
        s50, s99 = percentiles(server_ms, (50, 99))
        n = len(client_ms)
        # The stages' p99 do not add up to the whole's: each stage has its slow questions.
        parts = ", ".join(f"{name} {' / '.join(f'{v:.1f}' for v in percentiles(ms, (50, 99)))}"
                          for name, ms in stages.items())
        return [Row(f"retrieve @{self.stored:,} {label}", n, sum(client_ms) / 1000,
                    f"p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms",
                    f"client; server p50 {s50:.1f} / p99 {s99:.1f}; "
                    f"avg {hits / max(n, 1):.1f} results; every question new"),
                Row("  its stages (server)", n, sum(server_ms) / 1000,
                    "p50 / p99 ms each", parts),
                floor]

    @staticmethod
    def question_floor(questions: list[tuple[str, str]]) -> Row:
        """The same questions embedded one by one in this process, just before they are asked
        (the node idle): the model a node embeds questions with, on one thread. The largest part
        of a retrieve, and the host's speed that minute: a loud neighbour shows here too."""
        embedder = make_embedder()  # the process's one model, as a node holds it
        embed = getattr(embedder, "embed_queries", embedder.embed)
        embed(["warm-up"])
        times = []
        for _, question in questions:
            started = time.perf_counter()
            embed([question])
            times.append((time.perf_counter() - started) * 1000)
        p50, p95, p99 = percentiles(times)
        return Row("  bound: its questions' embedding", len(times), sum(times) / 1000,
                   f"p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms",
                   "in the bench's process, one by one, just before they are asked; the host's "
                   "floor that minute")

    def stage(self, size: int, first: bool) -> list[Row]:
        progress(f"ingest to {size:,}")
        rows = [self.ingest_to(size)]
        self.wait_indexed()
        if first:
            progress("retrieve before derivation")
            rows += self.retrieve("events only, nothing derived", None)
        before = self.stored - sum(n for i, n in self.batches if i <= self.derived_to)
        progress(f"derive {before:,} events")
        derived = self.derive()
        rows += derived
        self.settled += derived[0].seconds
        progress("bound: embedding only")
        bound = self.bound()
        rows.append(bound)
        ratio = (self.stored / self.settled) / (bound.n / bound.seconds)
        derived[0].notes += (f"; whole store {self.stored:,} events in {self.settled:,.0f} s = "
                             f"{self.stored / self.settled:,.1f} ev/s, {ratio:.0%} of the bound")
        progress("retrieve after derivation")
        rows.append(self.first_questions())
        rows += self.retrieve("with memories", None)
        rows += self.retrieve("layers=L0", ["L0"])
        return rows


def avg_chars(events: Sequence[dict[str, Any]]) -> float:
    return sum(len(e["content"]) for e in events) / max(len(events), 1)


def check_run(result: dg.ExecuteInProcessResult) -> None:
    if not result.success:
        errors = []
        for event in result.get_step_failure_events():
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            errors.append(error.message.strip() if error is not None else "no error info")
        raise BenchError(f"memory run failed: {'; '.join(errors)}")
    failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
    if failed:
        raise BenchError(f"asset checks failed: {failed}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=10_000, help="first store size (10000)")
    parser.add_argument("--big", action="store_true", help="then grow to --big-events")
    parser.add_argument("--big-events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--run-events", type=int, default=2000,
                        help="events per pipeline run (a log range), default 2000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="", help="write a cProfile of the runs here")
    parser.add_argument("--keep", default="", help="build the store in this (new) directory "
                        "and keep it, e.g. to profile retrieve over it afterwards")
    parser.add_argument("--retrieve-only", action="store_true",
                        help="with --keep DIR of an earlier run (same --events/--big): only the "
                             "retrieve rows, over the store kept there")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(header("realistic"), flush=True)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="memorose-realistic-"))
    root.mkdir(parents=True, exist_ok=True)
    node = NodeProcess(root / "node", root / "node.log")
    ports = root / "ports.json"  # a node keeps its Raft address: a kept store restarts on it
    if args.retrieve_only:
        node.port, node.raft_port = json.loads(ports.read_text())
        node.url = node.url.rsplit(":", 1)[0] + f":{node.port}"
    elif args.keep:
        ports.write_text(json.dumps([node.port, node.raft_port]))
    rows: list[Row] = []
    failed = None
    bench = None
    try:
        progress("starting node")
        started = time.perf_counter()
        rows.append(Row("node start (/health 200)", 0, node.start(), "-", f"port {node.port}"))
        ModelResource().embedder().embed(["warm-up"])  # load once, outside every timed row
        bench = Realistic(node, args)
        if args.retrieve_only:
            bench.stored = args.big_events if args.big else args.events
            bench.wait_indexed()
            rows.append(bench.first_questions())  # as the warm-up runs, as a user would
            rows.append(bench.wait_warm(started))
            rows += bench.retrieve("with memories", None)
            rows += bench.retrieve("layers=L0", ["L0"])
        else:
            rows += bench.stage(args.events, first=True)
            if args.big:
                rows += bench.stage(args.big_events, first=False)
            progress("fresh runs")
            rows += bench.fresh_runs()
    except (BenchError, httpx.HTTPError) as exc:
        failed = exc
    finally:
        if bench is not None:
            bench.close()
            if bench.profile is not None:
                bench.profile.dump_stats(args.profile)
        exit_code = node.stop()
        problems = node.problems()
        tail = node.tail()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if failed is not None:
        print(format_table(rows))
        print(f"bench failed: {failed}\n--- node log tail ---\n{tail}", file=sys.stderr)
        return 1
    print(format_table(rows))
    print(f"node exit code {exit_code}; {len(problems)} warning/error log lines; "
          f"load avg at end {load_average()}")
    for line in problems[:20]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
