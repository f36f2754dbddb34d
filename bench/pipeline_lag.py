"""Pipeline lag: how long after its ingest is acknowledged does an event show up as an L1 memory.

Starts ``memorose up`` (node + Dagster daemon + Dagster webserver) as a subprocess on free
127.0.0.1 ports with a throw-away data directory, waits for its ready line, then sends a steady
stream of distinct, informative events (``POST /api/v1/events``, one user, default 2 events/s for
60 s) and records the time each one is acknowledged. A poller thread lists the user's L1
memories (``GET /api/v1/admin/records?kind=l1``) every 0.25 s and records, per event id, when an
L1 naming it in ``source_event_ids`` is first seen. After the send phase it waits up to 120 s for
stragglers and for the pipeline to go idle.

Reported, as one table:

* events sent, events reflected in L1, lag ack -> seen in L1 (p50 / p95 / max);
* the ``memory_job`` runs the ``log_sensor`` launched, from the Dagster GraphQL API: how many,
  their status, mean duration (endTime - startTime), mean queue + launch overhead
  (startTime - creationTime, split at the RUN_STARTING event into queued and launching, and
  launching at the "Started process" engine event into spawn and code load) and mean time
  per step;
* the lag of each event split along its run (the run whose log range (after, until] holds the
  event's log index): waiting for a sensor tick (ack -> run created), queued, launching the run
  worker, run start -> ``l1_memories`` step done, and step done -> seen by the poller.

``--bulk N`` first ingests N events of ``history.py``'s conversational histories (many users,
batches of 500 from 2 clients, as ``realistic.py`` does) and starts the trickle as soon as they are
acknowledged, so the trickle runs while the bulk is being derived. It adds a table: how long the
bulk took from its first batch to the end of the last run over a log range holding bulk entries
(fully derived: L1, graph and L2), and the trickle's lag while that was going on.

The poller's 0.25 s period bounds the resolution of "seen".

    python bench/pipeline_lag.py              # 2 events/s for 60 s
    python bench/pipeline_lag.py --quick      # 2 events/s for 20 s
    python bench/pipeline_lag.py --rate 5 --seconds 30
    python bench/pipeline_lag.py --bulk 10000 --seconds 60   # a trickle beside a bulk load
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from history import History

HOST = "127.0.0.1"
USER = "bench_user"
STREAM = "bench_stream"
READY_PREFIX = "memorose up: API"
READY_DEADLINE = 180.0
STRAGGLER_DEADLINE = 120.0
IDLE_DEADLINE = 120.0
POLL_PERIOD = 0.25
STOP_GRACE = 45.0
SEND_OVERRUN = 60.0  # stop sending this long after the planned end (a wedged node: 504s)
REQUEST_TIMEOUT = 30.0
ACTIVE_RUN_STATUSES = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
# Run lifecycle events: the queued coordinator dequeues a run and the launcher emits
# RUN_STARTING; "Started process" when the run worker subprocess is up; RUN_START once the worker
# has loaded the code and begins executing.
PHASES = ("RUN_ENQUEUED", "RUN_STARTING", "RUN_START")
PROCESS_STARTED = "Started process for run"
LOG_MARKERS = ("Traceback", "Error", "ERROR", "FAILURE", "exited (")
BULK_BATCH = 500
BULK_CLIENTS = 2
BULK_EVENTS_PER_USER = 400
BULK_SECONDS_PER_EVENT = 0.05  # the most to wait for stragglers and idle runs, per bulk event

PEOPLE = ("Ana", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
          "Keiko", "Luca", "Marta", "Nuno", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tariq")
CITIES = ("Porto", "Lyon", "Kyoto", "Oslo", "Lima", "Krakow", "Dublin", "Seville", "Tallinn",
          "Valparaiso", "Hanoi", "Zagreb", "Bergen", "Cusco", "Graz", "Malaga", "Turku")
DOINGS = ("visited the museum", "cooked risotto", "hiked to the old lighthouse",
          "bought a wool sweater", "watched a jazz concert", "rented a bicycle",
          "tasted local cheese", "repaired a flat tyre", "read a mystery novel",
          "booked a train ticket", "painted a watercolour of the harbour",
          "learned three chess openings", "photographed the cathedral", "swam in the cold sea",
          "argued about football", "planted tomatoes in the garden", "missed the last ferry")


def sentence(i: int) -> str:
    """A distinct, informative sentence for event number ``i``."""
    doing = DOINGS[i % len(DOINGS)]
    city = CITIES[(i // len(DOINGS)) % len(CITIES)]
    person = PEOPLE[(i * 7) % len(PEOPLE)]
    return f"On day {i + 1} I {doing} in {city} with {person}."


@dataclass
class Sent:
    event_id: str
    log_index: int
    sent_at: float
    ack_at: float


@dataclass
class Bulk:
    events: int
    users: int
    started: float  # wall clock, first batch sent
    acked: float  # wall clock, last batch acknowledged
    last_index: int  # the highest log index holding bulk events


@dataclass
class RunInfo:
    run_id: str
    status: str
    created: float
    started: float | None
    ended: float | None
    after: int | None
    until: int | None
    priority: str
    phases: dict[str, float] = field(default_factory=dict)
    steps: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_up(data_dir: Path, log_path: Path, ports: Sequence[int]) -> subprocess.Popen:
    """``memorose up`` in its own session, stdout and stderr into ``log_path``."""
    api, raft, dagster_port = ports
    exe = Path(sys.executable).parent / "memorose"
    command = [str(exe), "up", "--host", HOST, "--port", str(api), "--raft-port", str(raft),
               "--dagster-port", str(dagster_port), "--data-dir", str(data_dir)]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=data_dir.parent)


def wait_ready(process: subprocess.Popen, log_path: Path, timeout: float) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        lines = log_path.read_text(errors="replace").splitlines()
        if any(line.startswith(READY_PREFIX) for line in lines):
            return time.monotonic() - started
        if process.poll() is not None:
            raise RuntimeError(f"memorose up exited with {process.returncode} while starting")
        time.sleep(0.5)
    raise RuntimeError(f"memorose up printed no ready line within {timeout:.0f}s")


def stop_up(process: subprocess.Popen) -> None:
    """SIGTERM to the ``memorose up`` pid (it stops its children); its group only as a fallback."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        print(f"memorose up (pid {process.pid}) did not stop in {STOP_GRACE:.0f}s; killing "
              "its process group", file=sys.stderr)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Poller(threading.Thread):
    """Lists the user's L1 memories every ``POLL_PERIOD`` and notes when each source is seen."""

    def __init__(self, base_url: str, max_seconds: float) -> None:
        super().__init__(name="l1-poller", daemon=True)
        self.base_url = base_url
        self.max_seconds = max_seconds
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.errors = 0

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        params = {"kind": "l1", "user_id": USER}
        with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT) as client:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                try:
                    response = client.get("/api/v1/admin/records", params=params)
                    response.raise_for_status()
                    records = response.json()["records"]
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                    records = []
                now = time.time()
                with self.lock:
                    self.polls += 1
                    for record in records:
                        for event_id in record.get("source_event_ids", []):
                            self.seen.setdefault(event_id, now)
                self.stop_event.wait(POLL_PERIOD)

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.seen)


def send_events(base_url: str, rate: float, seconds: float) -> tuple[list[Sent], int, int]:
    """POSTs ``rate * seconds`` events on a fixed schedule; returns the acked ones, the failed
    count and the count never sent because the schedule overran by ``SEND_OVERRUN``."""
    total = max(1, round(rate * seconds))
    sent: list[Sent] = []
    failures = 0
    start = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        for i in range(total):
            if time.monotonic() > start + seconds + SEND_OVERRUN:
                return sent, failures, total - i
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = {"user_id": USER, "stream_id": STREAM, "content": sentence(i),
                    "metadata": {"bench": "pipeline_lag", "seq": i}}
            sent_at = time.time()
            try:
                response = client.post("/api/v1/events", json=body)
            except httpx.HTTPError as exc:
                failures += 1
                print(f"  event {i}: {exc!r}", file=sys.stderr)
                continue
            ack_at = time.time()
            if response.status_code != 201:
                failures += 1
                print(f"  event {i}: HTTP {response.status_code} {response.text[:200]}",
                      file=sys.stderr)
                continue
            data = response.json()
            sent.append(Sent(data["event_id"], int(data["log_index"]), sent_at, ack_at))
    return sent, failures, 0


def ingest_bulk(base_url: str, events: int, users: int = 0) -> Bulk:
    """``events`` events of ``history.py`` (seeded) of ``users`` users (default one per
    ``BULK_EVENTS_PER_USER``), in batches over ``BULK_CLIENTS`` clients."""
    users = users or max(1, events // BULK_EVENTS_PER_USER)
    history = History(events, users).events()
    batches = [history[i:i + BULK_BATCH] for i in range(0, len(history), BULK_BATCH)]
    indexes: list[int] = []
    lock = threading.Lock()

    def send(share: Sequence[list[dict[str, Any]]]) -> None:
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            for batch in share:
                response = client.post("/api/v1/events/batch", json={"events": batch})
                if response.status_code != 201:
                    raise RuntimeError(f"bulk batch: HTTP {response.status_code} "
                                       f"{response.text[:200]}")
                with lock:
                    indexes.append(int(response.json()["log_index"]))

    started = time.time()
    threads = [threading.Thread(target=send, args=(batches[i::BULK_CLIENTS],))
               for i in range(BULK_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(indexes) != len(batches):
        raise RuntimeError(f"bulk: {len(indexes)} of {len(batches)} batches acknowledged")
    return Bulk(len(history), users, started, time.time(), max(indexes))


def wait_stragglers(poller: Poller, sent: Sequence[Sent], timeout: float) -> float:
    started = time.monotonic()
    wanted = {s.event_id for s in sent}
    while time.monotonic() - started < timeout:
        if wanted.issubset(poller.snapshot()):
            break
        time.sleep(POLL_PERIOD)
    return time.monotonic() - started


RUNS_QUERY = """
{ runsOrError(filter: {pipelineName: "memory_job"}) { __typename
    ... on Runs { results { runId status creationTime startTime endTime
        tags { key value }
        stepStats { stepKey status startTime endTime }
        eventConnection(limit: 200) { events { __typename
            ... on MessageEvent { timestamp eventType message } } } } }
    ... on PythonError { message } } }
"""


# While waiting for the runs to end, only whether any is active: the full query above reads every
# run's events, which at a hundred runs took half a core of the webserver once a second.
ACTIVE_QUERY = ("{ runsOrError(filter: {statuses: [" + ", ".join(sorted(ACTIVE_RUN_STATUSES))
                + "]}) { __typename ... on Runs { results { runId } } "
                "... on PythonError { message } } }")


OTHER_RUNS_QUERY = """
{ runsOrError { __typename
    ... on Runs { results { pipelineName status startTime endTime } }
    ... on PythonError { message } } }
"""


def graphql(dagster_url: str, query: str) -> dict[str, Any]:
    response = httpx.post(f"{dagster_url}/graphql", json={"query": query},
                          timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    payload = response.json()
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def _tag_int(tags: dict[str, str], key: str) -> int | None:
    value = tags.get(key)
    return int(value) if value is not None and value.isdigit() else None


def parse_run(raw: dict[str, Any]) -> RunInfo:
    tags = {t["key"]: t["value"] for t in raw["tags"]}
    run = RunInfo(run_id=raw["runId"], status=raw["status"], created=raw["creationTime"],
                  started=raw["startTime"], ended=raw["endTime"],
                  after=_tag_int(tags, "memorose/log_after"),
                  until=_tag_int(tags, "memorose/log_until"),
                  priority=tags.get("dagster/priority", "0"))
    for event in raw["eventConnection"]["events"]:
        kind = event.get("eventType")
        if kind == "ENGINE_EVENT" and event["message"].startswith(PROCESS_STARTED):
            kind = "PROCESS_STARTED"
        if kind is not None and kind not in run.phases:
            run.phases[kind] = int(event["timestamp"]) / 1000.0
    for step in raw["stepStats"]:
        run.steps[step["stepKey"]] = (step["startTime"], step["endTime"])
    return run


def fetch_runs(dagster_url: str) -> list[RunInfo]:
    data = graphql(dagster_url, RUNS_QUERY)["runsOrError"]
    if data["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {data}")
    return sorted((parse_run(r) for r in data["results"]), key=lambda r: r.created)


def other_job_rows(dagster_url: str) -> list[tuple[str, str]]:
    """The runs of other jobs (the lake's): they share the one-run-at-a-time queue."""
    data = graphql(dagster_url, OTHER_RUNS_QUERY)["runsOrError"]
    if data["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {data}")
    spans: dict[str, list[float]] = {}
    for run in data["results"]:
        if run["pipelineName"] != "memory_job":
            spans.setdefault(run["pipelineName"], []).append(
                (run["endTime"] or 0) - (run["startTime"] or 0) if run["startTime"] else 0.0)
    return [(f"{name} runs, duration mean", fmt_mean(values))
            for name, values in sorted(spans.items())] or [("runs of other jobs", "none")]


def wait_runs_idle(dagster_url: str, timeout: float) -> list[RunInfo]:
    """Runs once none is queued or in progress (or whatever there is at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and active_runs(dagster_url):
        time.sleep(1.0)
    return fetch_runs(dagster_url)


def active_runs(dagster_url: str) -> int:
    data = graphql(dagster_url, ACTIVE_QUERY)["runsOrError"]
    if data["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {data}")
    return len(data["results"])


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt_dist(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return (f"{percentile(values, 50):6.2f} / {percentile(values, 95):6.2f} / "
            f"{max(values):6.2f} s")


def fmt_mean(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):6.2f} s  (n={len(values)})" if values else "n/a"


def run_for(runs: Sequence[RunInfo], log_index: int) -> RunInfo | None:
    for run in runs:
        if run.after is not None and run.until is not None and run.after < log_index <= run.until:
            return run
    return None


def lag_parts(sent: Sent, seen_at: float, run: RunInfo) -> dict[str, float] | None:
    """The event's lag split along the run that covered it, or None if the run is incomplete."""
    dequeued = run.phases.get("RUN_STARTING")
    l1_end = run.steps.get("l1_memories", (None, None))[1]
    if dequeued is None or run.started is None or l1_end is None:
        return None
    return {"ack -> run created (sensor tick)": run.created - sent.ack_at,
            "run created -> RUN_STARTING (queue)": dequeued - run.created,
            "RUN_STARTING -> RUN_START (launch)": run.started - dequeued,
            "run started -> l1_memories done": l1_end - run.started,
            "l1_memories done -> seen by poller": seen_at - l1_end}


RUN_SPANS = (
    ("run duration (end - start), mean", "RUN_START", "ended"),
    ("queue + launch (start - created), mean", "created", "RUN_START"),
    ("  queued (created -> RUN_STARTING), mean", "created", "RUN_STARTING"),
    ("  launch (RUN_STARTING -> RUN_START), mean", "RUN_STARTING", "RUN_START"),
    ("    spawn (RUN_STARTING -> process up), mean", "RUN_STARTING", "PROCESS_STARTED"),
    ("    load code (process up -> RUN_START), mean", "PROCESS_STARTED", "RUN_START"),
    ("run start -> first step start, mean", "RUN_START", "first_step"),
)


def span(run: RunInfo, start: str, end: str) -> float | None:
    """Seconds between two named instants of a run (run fields, lifecycle events, first step)."""
    step_starts = [s for s, _ in run.steps.values() if s is not None]
    instants = {**run.phases, "created": run.created, "ended": run.ended,
                "first_step": min(step_starts) if step_starts else None}
    instants["RUN_START"] = run.started if run.started is not None else run.phases.get(
        "RUN_START")
    a, b = instants.get(start), instants.get(end)
    return b - a if a is not None and b is not None else None


def step_order(runs: Sequence[RunInfo]) -> list[str]:
    """Step keys in the order they ran (by their earliest start)."""
    first: dict[str, float] = {}
    for run in runs:
        for key, (start, _) in run.steps.items():
            if start is not None and run.started is not None:
                first[key] = min(first.get(key, float("inf")), start - run.started)
    return sorted(first, key=first.__getitem__)


def run_rows(runs: Sequence[RunInfo]) -> list[tuple[str, str]]:
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    priorities: dict[str, int] = {}
    for run in runs:
        priorities[run.priority] = priorities.get(run.priority, 0) + 1
    rows = [("memory_job runs", f"{len(runs)}  "
             + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items()))),
            ("runs by priority (dagster/priority)",
             ", ".join(f"{k}: {v}" for k, v in sorted(priorities.items())))]
    for label, start, end in RUN_SPANS:
        values = [v for v in (span(r, start, end) for r in runs) if v is not None]
        rows.append((label, fmt_mean(values)))
    for key in step_order(runs):
        times = [e - s for r in runs for k, (s, e) in r.steps.items()
                 if k == key and s is not None and e is not None]
        rows.append((f"step {key}, mean", fmt_mean(times)))
    gaps = [b.created - a.created for a, b in zip(runs, runs[1:], strict=False)]
    rows.append(("interval between run creations, mean", fmt_mean(gaps)))
    return rows


def waves(seen_times: Sequence[float]) -> int:
    """Distinct poll instants at which new L1 memories appeared (a lower bound on runs)."""
    return len(set(seen_times))


def event_rows(sent: Sequence[Sent], seen: dict[str, float], runs: Sequence[RunInfo],
               failures: tuple[int, int], elapsed: float) -> list[tuple[str, str]]:
    reflected = [s for s in sent if s.event_id in seen]
    lags = [seen[s.event_id] - s.ack_at for s in reflected]
    rows = [("events acked / failed / not sent (overrun)",
             f"{len(sent)} / {failures[0]} / {failures[1]}"),
            ("send rate achieved", f"{len(sent) / elapsed:6.2f} events/s" if elapsed else "n/a"),
            ("ingest ack latency p50 / p95 / max",
             fmt_dist([s.ack_at - s.sent_at for s in sent])),
            ("events reflected in L1", f"{len(reflected)} of {len(sent)}"),
            ("lag ack -> seen in L1 p50 / p95 / max", fmt_dist(lags)),
            ("L1 appearance waves (poller)", str(waves([seen[s.event_id] for s in reflected])))]
    parts: dict[str, list[float]] = {}
    covered = {id(r): 0 for r in runs}
    for s in reflected:
        run = run_for(runs, s.log_index)
        split = lag_parts(s, seen[s.event_id], run) if run is not None else None
        if run is not None:
            covered[id(run)] += 1
        for name, value in (split or {}).items():
            parts.setdefault(name, []).append(value)
    busy = [n for n in covered.values() if n]
    rows.append(("bench events per run (runs with any), mean",
                 f"{statistics.fmean(busy):6.2f}  (runs={len(busy)})" if busy else "n/a"))
    rows.extend((f"lag part: {name}, p50 / p95 / max", fmt_dist(values))
                for name, values in parts.items())
    return rows


def per_run_rows(runs: Sequence[RunInfo], sent: Sequence[Sent]) -> list[tuple[str, str]]:
    """One row per run: when it was created, its events and where its time went."""
    if not runs:
        return [("no runs", "")]
    origin = runs[0].created
    rows = []
    for number, run in enumerate(runs, 1):
        events = sum(1 for s in sent if run_for([run], s.log_index) is run)
        parts = [span(run, "created", "RUN_STARTING"), span(run, "RUN_STARTING", "RUN_START"),
                 span(run, "RUN_START", "ended")]
        cells = "  ".join("   n/a" if v is None else f"{v:6.2f}" for v in parts)
        rows.append((f"run {number:2d} +{run.created - origin:6.1f} s {run.status}",
                     f"({run.after}, {run.until}] priority {run.priority:>2}  {events:3d} bench "
                     f"events  queued/launch/run {cells} s"))
    return rows


def bulk_rows(bulk: Bulk, runs: Sequence[RunInfo], sent: Sequence[Sent],
              seen: dict[str, float]) -> list[tuple[str, str]]:
    """How long the bulk took to be derived, and the trickle's lag while it was."""
    over = [r for r in runs if r.after is not None and r.after < bulk.last_index]
    done = [r.ended for r in over if r.ended is not None]
    complete = bool(over) and all(r.status == "SUCCESS" for r in over)
    rows = [("bulk events / users", f"{bulk.events} / {bulk.users}"),
            ("bulk ingest (first batch -> last ack)", f"{bulk.acked - bulk.started:6.2f} s"),
            ("bulk runs (ranges holding bulk entries)",
             f"{len(over)}, " + ("all SUCCESS" if complete else "NOT all successful"))]
    if done and complete:
        seconds = max(done) - bulk.started
        rows.append(("bulk fully derived (first batch -> last bulk run ends)",
                     f"{seconds:6.1f} s  ({bulk.events / seconds:,.0f} events/s)"))
        during = [seen[s.event_id] - s.ack_at for s in sent
                  if s.event_id in seen and s.ack_at < max(done)]
        rows.append(("trickle lag while the bulk was derived p50 / p95 / max",
                     fmt_dist(during) + f"  (n={len(during)})"))
    return rows


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print(f"| {'metric'.ljust(width)} | value |")
    print(f"| {'-' * width} | --- |")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


def print_machine(args: argparse.Namespace) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"pipeline_lag  {now}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()} ({sys.executable}), load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"load: rate {args.rate} events/s for {args.seconds} s, one user, poll every "
          f"{POLL_PERIOD} s, stragglers up to {straggler_deadline(args):.0f} s"
          + (f"; after a bulk of {args.bulk} events" if args.bulk else ""), flush=True)


def straggler_deadline(args: argparse.Namespace) -> float:
    return STRAGGLER_DEADLINE + args.bulk * BULK_SECONDS_PER_EVENT


def suspicious_log_lines(log_path: Path, limit: int = 25) -> list[str]:
    """First occurrences of distinct error-looking lines (ids, numbers, times ignored)."""
    distinct: dict[str, str] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if any(marker in line for marker in LOG_MARKERS):
            distinct.setdefault(re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "#", line), line)
    return list(distinct.values())[:limit]


def measure(args: argparse.Namespace, api_url: str, dagster_url: str) -> list[RunInfo]:
    extra = args.bulk * BULK_SECONDS_PER_EVENT
    poller = Poller(api_url, args.seconds + STRAGGLER_DEADLINE + IDLE_DEADLINE + 2 * extra + 60)
    poller.start()
    bulk = None
    try:
        if args.bulk:
            bulk = ingest_bulk(api_url, args.bulk, args.bulk_users)
            print(f"bulk: {bulk.events} events of {bulk.users} users acknowledged in "
                  f"{bulk.acked - bulk.started:.1f} s (up to log index {bulk.last_index}); "
                  "starting the trickle", flush=True)
        started = time.monotonic()
        sent, failed, unsent = send_events(api_url, args.rate, args.seconds)
        elapsed = time.monotonic() - started
        print(f"sent {len(sent)} events in {elapsed:.1f} s; waiting for stragglers", flush=True)
        waited = wait_stragglers(poller, sent, straggler_deadline(args))
        print(f"waited {waited:.1f} s for stragglers; waiting for runs to finish", flush=True)
        runs = wait_runs_idle(dagster_url, IDLE_DEADLINE + extra)
    finally:
        poller.stop_event.set()
        poller.join(timeout=REQUEST_TIMEOUT + 5)
    seen = poller.snapshot()
    print(f"poller: {poller.polls} polls, {poller.errors} errors; load average now "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print_table("Events", event_rows(sent, seen, runs, (failed, unsent), elapsed))
    if bulk is not None:
        print_table("Bulk load", bulk_rows(bulk, runs, sent, seen))
    print_table("Dagster runs (memory_job)", run_rows(runs) + other_job_rows(dagster_url))
    print_table("Per run (created at + s after the first)", per_run_rows(runs, sent))
    return runs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=2.0, help="events per second (default 2)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the send phase in seconds (default 60)")
    parser.add_argument("--quick", action="store_true", help="rate 2 for 20 s")
    parser.add_argument("--bulk", type=int, default=0, metavar="N",
                        help="first ingest N events of many users (batched); the trickle "
                             "then runs while they are derived")
    parser.add_argument("--bulk-users", type=int, default=0, metavar="U",
                        help=f"users of the bulk (default N / {BULK_EVENTS_PER_USER})")
    args = parser.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 2.0, 20.0
    if args.rate <= 0 or args.seconds <= 0 or args.bulk < 0 or args.bulk_users < 0:
        parser.error("--rate and --seconds must be positive, --bulk and --bulk-users not "
                     "negative")
    return args


def run_benchmark(args: argparse.Namespace, tmp: Path) -> None:
    log_path = tmp / "up.log"
    ports = free_ports(3)
    api_url, dagster_url = f"http://{HOST}:{ports[0]}", f"http://{HOST}:{ports[2]}"
    process = start_up(tmp / "data", log_path, ports)
    runs: list[RunInfo] = []
    try:
        ready = wait_ready(process, log_path, READY_DEADLINE)
        print(f"memorose up ready in {ready:.1f} s (pid {process.pid}, API {api_url}, "
              f"Dagster {dagster_url})", flush=True)
        runs = measure(args, api_url, dagster_url)
    finally:
        stop_up(process)
        print(f"\nmemorose up exited with {process.returncode}")
        if any(r.status != "SUCCESS" for r in runs) or process.returncode != 0 or not runs:
            print("memorose up log lines that look like trouble (distinct, first 25):")
            for line in suspicious_log_lines(log_path):
                print(f"  {line}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_machine(args)
    tmp = Path(tempfile.mkdtemp(prefix="memorose-lag-"))
    try:
        run_benchmark(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
