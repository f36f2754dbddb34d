"""Ingest throughput and retrieve latency of one real Memorose node, against raw RocksDB.

Measures, in one run and printed as one table:

* a raw ``rocksdict`` baseline: msgpack-encoded events (~300 bytes) put one by one, and in
  ``WriteBatch``es of 500 - the ceiling for what the node's store could absorb;
* HTTP single-event ingest (``POST /api/v1/events``) from 8 concurrent keep-alive clients;
* HTTP batched ingest (``POST /api/v1/events/batch``, 500 events a batch) from 2 clients, and
  its ratio to the raw ``WriteBatch`` loop;
* embedding through the pipeline once the store holds ``--small`` and then ``--events``
  events: the Dagster asset ``l0_events`` materialized in this process over the log range
  ingested since the previous embedding step (it reads the events over HTTP, embeds them with
  the local MiniLM and commits the vectors back through the node's log), then the wait until
  the node has indexed them (``indexed_index >= applied_index``);
* retrieve latency (``POST /api/v1/retrieve``, top_k=10) right after each embedding step:
  client-side p50/p95/p99 and the server's own ``took_ms``.

The node runs as a subprocess (``python -m memorose_dagster.cli serve``) on free 127.0.0.1 ports
with a throw-away data directory and its default environment. It embeds only queries; event
vectors exist only for what the pipeline has embedded, so ingest phases run without embedding.

    python bench/ingest_retrieve.py            # full run (several minutes)
    python bench/ingest_retrieve.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import msgpack
from rocksdict import Options, Rdict, WriteBatch

from assets.l0_events import l0_events
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import range_run_config
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

HOST = "127.0.0.1"
BATCH = 500
SINGLE_THREADS = 8
BATCH_THREADS = 2
MORE_BATCH_THREADS = (4, 8)  # clients of the extra batched rows
USERS = 100
STREAMS = 10
TOP_K = 10
SEED = 1234
WARMUP_QUERIES = 5
HEALTH_DEADLINE = 60.0
INDEX_DEADLINE = 600.0
POLL = 0.2
STOP_GRACE = 30.0
REQUEST_TIMEOUT = 120.0

# ~330 words; sentences are "<who> <did> the <adj> <thing> <prep> <place> <when> [...]".
WHO = ("i we they she he alice bob carol dave erin frank grace heidi ivan judy mallory oscar "
       "peggy trent victor").split()
DID = ("bought booked cancelled visited called emailed scheduled finished started moved planned "
       "ordered cooked painted fixed cleaned watched read wrote signed paid sold rented borrowed "
       "returned shipped tested reviewed approved rejected delayed renewed packed unpacked "
       "repaired installed upgraded deleted shared printed measured counted tasted tried missed "
       "found lost forgot remembered enjoyed disliked").split()
ADJ = ("new old red blue green small large quiet noisy cheap expensive broken shiny heavy light "
       "early late warm cold fresh stale spicy sweet bitter long short bright dark soft hard "
       "simple complex urgent routine weekly monthly annual local remote favourite boring "
       "exciting strange familiar wooden metal plastic electric digital vintage modern").split()
THING = ("car bike train flight ticket hotel apartment house kitchen garden laptop phone camera "
         "printer router monitor keyboard guitar piano book novel magazine report invoice "
         "contract budget meeting appointment dentist doctor lawyer plumber recipe pasta pizza "
         "salad soup coffee tea wine cake bread sofa table chair lamp window door roof fence "
         "painting photo album jacket shoes umbrella backpack suitcase passport visa insurance "
         "loan mortgage salary bonus project deadline presentation spreadsheet database server "
         "backup password account subscription newsletter podcast movie series concert "
         "festival museum gallery park beach mountain lake river island forest marathon workout "
         "yoga class lesson course exam certificate birthday wedding anniversary gift party "
         "dinner lunch breakfast vacation").split()
PREP = "for with near at from into behind beside".split()
PLACE = ("paris london berlin tokyo lisbon madrid rome vienna prague oslo boston chicago seattle "
         "denver austin toronto montreal sydney melbourne dublin home work office school "
         "downtown uptown airport station market mall library hospital gym cafe restaurant "
         "bakery pharmacy warehouse studio harbour").split()
WHEN = ("today yesterday tomorrow tonight monday tuesday wednesday thursday friday saturday "
        "sunday morning afternoon evening weekend january march june september december").split()
VOCABULARY = sorted(set(WHO + DID + ADJ + THING + PLACE + WHEN))


class BenchError(RuntimeError):
    """The node misbehaved (bad status, died, never caught up)."""


@dataclass
class Row:
    phase: str
    n: int
    seconds: float
    metric: str
    notes: str = ""


class Workload:
    """Deterministic events and queries: 100 users, 10 streams, short vocabulary sentences."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)
        self._seq = 0

    def sentence(self) -> str:
        pick = self._rng.choice
        words = [pick(WHO), pick(DID), "the", pick(ADJ), pick(THING), pick(PREP), pick(PLACE),
                 pick(WHEN)]
        if self._rng.random() < 0.5:
            words += ["because", "the", pick(THING), "was", pick(ADJ)]
        return " ".join(words)

    def event(self) -> dict[str, Any]:
        self._seq += 1
        return {"user_id": f"user_{self._rng.randrange(USERS)}",
                "stream_id": f"s{self._rng.randrange(STREAMS)}",
                "content": self.sentence(),
                "metadata": {"source": "bench", "agent": f"agent-{self._seq % 8}",
                             "lang": "en", "seq": self._seq},
                "timestamp": 1.7e9 + self._seq}

    def events(self, n: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(n)]

    def query(self) -> tuple[str, str]:
        words = self._rng.sample(VOCABULARY, self._rng.randint(3, 6))
        return f"user_{self._rng.randrange(USERS)}", " ".join(words)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class NodeProcess:
    """``memorose serve`` in a subprocess, its output in ``log_path``."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.raft_port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self.killed = False

    def start(self) -> float:
        """Start the node; returns the seconds until ``/health`` answered 200."""
        cmd = [sys.executable, "-m", "memorose_dagster.cli", "serve", "--host", HOST,
               "--port", str(self.port), "--raft-port", str(self.raft_port),
               "--data-dir", str(self.data_dir)]
        started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.log_path.parent)
        deadline = time.monotonic() + HEALTH_DEADLINE
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(POLL)
        raise BenchError(f"node not healthy after {HEALTH_DEADLINE:.0f}s")

    def wait_warm(self, deadline_s: float = 300.0) -> str:
        """Until the node's start-up warm-up is over (``/health`` ``caches`` no longer
        ``warming``); returns what it says then (``warm``, or ``cold`` when turned off)."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.check_alive()
            caches = httpx.get(self.url + "/health", timeout=5.0).json().get("caches")
            if caches != "warming":
                return caches
            time.sleep(POLL)
        raise BenchError(f"the node's caches still warming after {deadline_s:.0f}s")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError("the node was not started")
        return self._proc.pid

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(f"node exited with code {self._proc.returncode}")

    def stop(self) -> int | None:
        """SIGTERM by pid, then SIGKILL if it outlives the grace period. Returns the exit code."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.killed = True
            proc.send_signal(signal.SIGKILL)
            return proc.wait(timeout=10)

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def problems(self) -> list[str]:
        words = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
        return [line for line in self.log_lines() if any(w in line for w in words)]


def post(client: httpx.Client, path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
    resp = client.post(path, json=body)
    if resp.status_code != expect:
        raise BenchError(f"POST {path}: HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def run_parallel(clients: Sequence[httpx.Client], items: Sequence[Any],
                 work: Callable[[httpx.Client, Any], int]) -> tuple[float, list[int]]:
    """Spread ``items`` round-robin over one thread per client; returns (seconds, results)."""
    chunks = [items[i::len(clients)] for i in range(len(clients))]

    def worker(client: httpx.Client, chunk: Sequence[Any]) -> list[int]:
        return [work(client, item) for item in chunk]

    with ThreadPoolExecutor(len(clients)) as pool:
        started = time.perf_counter()
        futures = [pool.submit(worker, c, chunk) for c, chunk in zip(clients, chunks, strict=True)]
        results = [r for f in futures for r in f.result()]
        return time.perf_counter() - started, results


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> list[float]:
    if len(values) < 2:
        return [values[0] if values else float("nan")] * len(points)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [cuts[p - 1] for p in points]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} ev/s" if seconds > 0 else "-"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stored_form(body: dict[str, Any], index: int) -> tuple[bytes, bytes]:
    """The key and msgpack value the node's store would write for an API event."""
    event_id = f"{index:026d}"
    record = {"event_id": event_id, "tenant": "default", "content_type": "text",
              "kind": "event", "log_index": index, **body}
    return f"e\x1fdefault\x1f{event_id}".encode(), msgpack.packb(record)


def write_batches(path: Path, pairs: list[tuple[bytes, bytes]]) -> float:
    """Seconds to write ``pairs`` into a new raw rocksdict in WriteBatches of BATCH."""
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    db = Rdict(str(path), opts)
    started = time.perf_counter()
    for i in range(0, len(pairs), BATCH):
        batch = WriteBatch(raw_mode=True)
        for key, value in pairs[i:i + BATCH]:
            batch.put(key, value)
        db.write(batch)
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def bench_rocksdict(path: Path, workload: Workload, n: int) -> list[Row]:
    """Raw rocksdict: one put per event, then WriteBatches of BATCH."""
    pairs = [stored_form(body, i) for i, body in enumerate(workload.events(n))]
    avg = sum(len(v) for _, v in pairs) / max(n, 1)
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    db = Rdict(str(path / "puts"), opts)
    started = time.perf_counter()
    for key, value in pairs:
        db[key] = value
    put_s = time.perf_counter() - started
    db.close()
    batch_s = write_batches(path / "batches", pairs)
    note = f"avg value {avg:.0f} B, default Options (WAL, no fsync)"
    return [Row("rocksdict put loop", n, put_s, rate(n, put_s), note),
            Row(f"rocksdict WriteBatch({BATCH})", n, batch_s, rate(n, batch_s), note)]


class Bench:
    """The phases against one running node; keeps the store's size and what is embedded."""

    def __init__(self, node: NodeProcess, workload: Workload):
        self.node = node
        self.workload = workload
        self.client = httpx.Client(base_url=node.url, timeout=REQUEST_TIMEOUT)
        self.stored = 0            # events acknowledged by the node
        self.last_index = 0        # highest log index an ingest returned
        self.embedded_to = 0       # log index through which events have been embedded
        self.pending = 0           # events ingested after embedded_to

    def close(self) -> None:
        self.client.close()

    def _ingest(self, threads: int, n: int, items: Sequence[Any],
                send: Callable[[httpx.Client, Any], int]) -> float:
        """Send ``items`` (``n`` events) from ``threads`` clients; the seconds it took."""
        clients = [httpx.Client(base_url=self.node.url, timeout=REQUEST_TIMEOUT)
                   for _ in range(threads)]
        try:
            seconds, indexes = run_parallel(clients, items, send)
        finally:
            for client in clients:
                client.close()
        self.stored += n
        self.pending += n
        self.last_index = max([self.last_index, *indexes])
        return seconds

    def single(self, n: int) -> Row:
        def send(client: httpx.Client, event: dict[str, Any]) -> int:
            return post(client, "/api/v1/events", event, 201)["log_index"]

        seconds = self._ingest(SINGLE_THREADS, n, self.workload.events(n), send)
        return Row(f"http single x{SINGLE_THREADS}", n, seconds, rate(n, seconds),
                   "one Raft commit per event")

    def batched(self, label: str, n: int, threads: int = BATCH_THREADS,
                size: int = BATCH) -> Row:
        batches = [self.workload.events(min(size, n - i)) for i in range(0, n, size)]

        def send(client: httpx.Client, batch: list[dict[str, Any]]) -> int:
            body = post(client, "/api/v1/events/batch", {"events": batch}, 201)
            if len(body["event_ids"]) != len(batch):
                raise BenchError(f"batch of {len(batch)} got {len(body['event_ids'])} ids")
            return body["log_index"]

        seconds = self._ingest(threads, n, batches, send)
        return Row(label, n, seconds, rate(n, seconds), f"store now {self.stored:,}")

    def fill_to(self, target: int) -> Row | None:
        missing = target - self.stored
        if missing <= 0:
            return None
        return self.batched(f"fill to {target:,} (batch x{BATCH_THREADS})", missing)

    def _status(self) -> dict[str, Any]:
        resp = self.client.get("/api/v1/cluster/status")
        if resp.status_code != 200:
            raise BenchError(f"GET cluster/status: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def load_model(self) -> Row:
        """Load the pipeline's embedder into this process before timing any run that uses it
        (runs share one model per process), so the embed rows measure embedding, not loading."""
        started = time.perf_counter()
        embedder = ModelResource().embedder()
        embedder.embed(["warm-up"])
        seconds = time.perf_counter() - started
        return Row("load pipeline model", 0, seconds, "-",
                   f"{embedder.name}, once per process; not in the embed rows")

    def embed(self) -> Row:
        """Materialize ``l0_events`` over (embedded_to, last_index], then wait for the index."""
        after, until = self.embedded_to, self.last_index
        started = time.perf_counter()
        result = dg.materialize(
            [l0_events], raise_on_error=False,
            resources={"cluster": ClusterResource(urls=self.node.url, timeout=REQUEST_TIMEOUT),
                       "model": ModelResource()},
            partition_key=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            run_config={**range_run_config(after, until, assets=(keys.L0_EVENTS,)),
                        "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        seconds = time.perf_counter() - started
        vectors = materialized_vectors(result)
        if vectors != self.pending:
            raise BenchError(f"l0_events over ({after}, {until}] made {vectors} vectors "
                             f"for {self.pending} events")
        self.embedded_to, self.pending = until, 0
        waited, status = self.wait_indexed()
        notes = (f"log ({after}, {until}], in-process; then indexed in {waited:.1f}s "
                 f"(applied_index {status['applied_index']})")
        return Row(f"embed via l0_events asset @{self.stored:,}", vectors, seconds,
                   f"{vectors / seconds:,.0f} vec/s" if seconds > 0 else "-", notes)

    def wait_indexed(self) -> tuple[float, dict[str, Any]]:
        """Seconds until cluster status shows ``indexed_index >= applied_index``, and it."""
        started = time.perf_counter()
        deadline = time.monotonic() + INDEX_DEADLINE
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.node.check_alive()
            status = self._status()
            if status["indexed_index"] >= status["applied_index"]:
                return time.perf_counter() - started, status
            time.sleep(POLL)
        raise BenchError(f"node not indexed within {INDEX_DEADLINE:.0f}s: {status}")

    def retrieve(self, queries: int) -> list[Row]:
        for _ in range(WARMUP_QUERIES):
            user, query = self.workload.query()
            post(self.client, "/api/v1/retrieve", {"user_id": user, "query": query,
                                                   "top_k": TOP_K}, 200)
        client_ms, server_ms, hits = [], [], 0
        started = time.perf_counter()
        for _ in range(queries):
            user, query = self.workload.query()
            sent = time.perf_counter()
            body = post(self.client, "/api/v1/retrieve",
                        {"user_id": user, "query": query, "top_k": TOP_K}, 200)
            client_ms.append((time.perf_counter() - sent) * 1000)
            server_ms.append(float(body["took_ms"]))
            hits += len(body["results"])
        seconds = time.perf_counter() - started
        p50, p95, p99 = percentiles(client_ms)
        s50, s99 = percentiles(server_ms, (50, 99))
        size = f"@{self.stored:,}"
        return [Row(f"retrieve {size} client", queries, seconds,
                    f"p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms",
                    f"top_k={TOP_K}, avg {hits / max(queries, 1):.1f} results, sequential"),
                Row(f"retrieve {size} server", queries, sum(server_ms) / 1000,
                    f"p50 {s50:.1f} / p99 {s99:.1f} ms", "took_ms reported by the node")]


def materialized_vectors(result: dg.ExecuteInProcessResult) -> int:
    """Vectors the ``l0_events`` run committed; BenchError if it failed or its check did."""
    if not result.success:
        errors = []
        for event in result.get_step_failure_events():
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:  # the op's own exception
                error = error.cause
            errors.append(error.message.strip() if error is not None else "no error info")
        raise BenchError(f"l0_events materialization failed: {'; '.join(errors)}")
    failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
    if failed:
        raise BenchError(f"l0_events asset checks failed: {failed}")
    (materialization,) = result.asset_materializations_for_node("l0_events")
    return int(materialization.metadata["records_out"].value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000,
                        help="store size for the big retrieve measurement (default 100000)")
    parser.add_argument("--small", type=int, default=10_000,
                        help="store size for the small retrieve measurement (default 10000)")
    parser.add_argument("--single", type=int, default=2000,
                        help="events sent one per request (default 2000)")
    parser.add_argument("--batched", type=int, default=50_000,
                        help="events for the batched-ingest phase and the rocksdict baseline "
                             "(default 50000)")
    parser.add_argument("--queries", type=int, default=300,
                        help="retrieve queries per store size (default 300)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2000 total, 500 small, 200 single, 1000 batched, "
                             "50 queries")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.small, args.single, args.batched, args.queries = 2000, 500, 200, 1000, 50
    if not 0 < args.single <= args.small <= args.events:
        parser.error("need 0 < --single <= --small <= --events")
    if args.batched < 1 or args.queries < 1:
        parser.error("--batched and --queries must be positive")
    return args


def header(title: str = "ingest/retrieve") -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f"memorose {title} bench | {now} | cpus={os.cpu_count()} | "
            f"load avg {load_average()} | {platform.platform()} | "
            f"Python {platform.python_version()}")


def load_average() -> str:
    """1/5/15-minute load averages: other work on the machine skews every row."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def format_table(rows: Sequence[Row]) -> str:
    cells = [("phase", "n", "seconds", "events/s | latency", "notes")]
    cells += [(r.phase, f"{r.n:,}", f"{r.seconds:.3f}", r.metric, r.notes) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = []
    for cell in cells:
        left = [cell[0].ljust(widths[0]), cell[1].rjust(widths[1]), cell[2].rjust(widths[2]),
                cell[3].ljust(widths[3])]
        lines.append("  ".join(left + [cell[4]]).rstrip())
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def run(args: argparse.Namespace, root: Path, node: NodeProcess) -> list[Row]:
    workload = Workload(SEED)
    progress(f"rocksdict baseline, {args.batched:,} events")
    rows = bench_rocksdict(root, workload, args.batched)
    batch_rate = args.batched / rows[1].seconds
    progress("starting node")
    startup = node.start()
    rows.append(Row("node start (/health 200)", 0, startup, "-", f"port {node.port}"))
    bench = Bench(node, workload)
    try:
        steps: list[tuple[str, Callable[[], Row | list[Row] | None]]] = [
            ("load pipeline model", bench.load_model),
            ("single ingest", lambda: bench.single(args.single)),
            (f"fill to {args.small:,}", lambda: bench.fill_to(args.small)),
            ("embed via l0_events", bench.embed),
            ("retrieve", lambda: bench.retrieve(args.queries)),
            ("batched ingest", lambda: bench.batched(f"http batch {BATCH} x{BATCH_THREADS}",
                                                     args.batched)),
            # The same with more clients at once: an acknowledged batch waits for its Raft
            # round and a Tantivy commit (fsync), which batches in flight together share.
            *[("batched ingest", lambda t=t: bench.batched(f"http batch {BATCH} x{t}",
                                                         args.batched, threads=t))
              for t in MORE_BATCH_THREADS],
            (f"fill to {args.events:,}", lambda: bench.fill_to(args.events)),
            ("embed via l0_events", bench.embed),
            ("retrieve", lambda: bench.retrieve(args.queries)),
        ]
        for name, step in steps:
            progress(f"{name} (store has {bench.stored:,} events)")
            result = step()
            added = result if isinstance(result, list) else [result] if result else []
            for row in added:
                if row.phase.startswith("http batch"):
                    row.notes += f"; {args.batched / row.seconds / batch_rate:.1%} of WriteBatch"
                progress(f"  {row.phase}: {row.metric} {row.notes}")
            rows.extend(added)
    finally:
        bench.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(header(), flush=True)
    root = Path(tempfile.mkdtemp(prefix="memorose-bench-"))
    node = NodeProcess(root / "node", root / "node.log")
    rows: list[Row] = []
    failed = None
    try:
        rows = run(args, root, node)
    except (BenchError, httpx.HTTPError) as exc:
        failed = exc
    finally:
        exit_code = node.stop()
        problems = node.problems()
        graceful = any("Finished server process" in line for line in node.log_lines())
        log_tail = node.tail()
        shutil.rmtree(root, ignore_errors=True)
    if failed is not None:
        print(f"bench failed: {failed}\n--- node log tail ---\n{log_tail}", file=sys.stderr)
        return 1
    print(format_table(rows))
    how = "SIGKILL after SIGTERM grace" if node.killed else "SIGTERM"
    print(f"node stopped by {how}: exit code {exit_code}, graceful uvicorn shutdown "
          f"{'logged' if graceful else 'NOT logged'}; {len(problems)} warning/error log lines; "
          f"load avg at end {load_average()}")
    for line in problems[:20]:
        print(f"  {line}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
