"""Overload bench: what a node does when offered more than it can serve, with its admission
limits off (the baseline) and at their defaults, in the same run, printed as one table.

For each configuration a fresh node (``memorose serve``, free 127.0.0.1 ports, its own temp
data directory) is offered:

* the sustainable load first, measured once, closed loop: ``--clients`` clients each sending
  requests back to back, alternately a batch of ``--batch`` events and a retrieve (top 10);
* then 1x, 4x and 16x that rate, open loop (requests sent on a fixed schedule, whether or not
  earlier ones were answered), ``--seconds`` each, then waiting for the stragglers;
* then ``--big`` batches of about 8 MB (1000 events of 8 KB) sent at once.

Per phase: offered and achieved rate, p50/p99 latency of the admitted (2xx) requests, the share
answered 503, connection errors (refused, reset, timed out), and the node's peak RSS while the
phase ran (sampled from /proc every 0.1 s) with its RSS after the phase. The node is stopped by
pid; the temp directory is removed.

    python bench/overload.py --quick     # smoke run, about a minute
    python bench/overload.py             # the full run, about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from node_process import NodeProcess

from memorose_dagster.ids import new_id

BIG = 2**40
CONFIGS = {  # name -> environment of the node
    "limits off": {"MEMOROSE_MAX_INFLIGHT": str(BIG), "MEMOROSE_MAX_INFLIGHT_BYTES": str(BIG),
                   "MEMOROSE_MAX_PENDING_COMMITS": str(BIG)},
    "limits on (defaults)": {},
}
USERS = 20
WORDS = "hiking coffee meeting dog garden piano train paris budget doctor recipe".split()
IDLE_REUSE = 3.0  # seconds a kept-alive connection is reused for (uvicorn closes them at 5 s)
CLIENT_CAP = 4000  # requests outstanding at once in this process; past it a send is skipped


def batch_body(size: int, content_chars: int = 0) -> bytes:
    events = [{"user_id": f"u{i % USERS}", "stream_id": f"s{i % 5}",
               "content": (f"overload fact {i}: {WORDS[i % len(WORDS)]} and "
                           f"{WORDS[(i * 7) % len(WORDS)]} on the weekend").ljust(content_chars,
                                                                                  ".")}
              for i in range(size)]
    return json.dumps({"events": events}).encode()


def retrieve_body(k: int) -> bytes:
    return json.dumps({"user_id": f"u{k % USERS}", "top_k": 10,
                       "query": f"{WORDS[k % len(WORDS)]} {WORDS[(k * 3) % len(WORDS)]}"}).encode()


@dataclass
class Phase:
    name: str
    offered: float = 0.0           # requests/s asked for (0: closed loop)
    sent: int = 0
    skipped: int = 0               # not sent: CLIENT_CAP outstanding already
    seconds: float = 0.0           # sending window
    started: float = field(default_factory=time.perf_counter)
    ended: float = 0.0             # the last answer (or error)
    latencies: list[float] = field(default_factory=list)  # admitted (2xx)
    overloaded: int = 0            # 503 overloaded
    other_status: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    timeouts: int = 0
    peak_rss: float = 0.0
    rss_after: float = 0.0


class RawHTTP:
    """A minimal HTTP/1.1 client over asyncio streams, keep-alive, one request per connection
    at a time: at 16x the load an httpx client cost as much CPU as the node it measured."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = (f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: "
                   f"application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
        reader = writer = None
        while self.idle and reader is None:
            since, reader, writer = self.idle.pop()
            if time.monotonic() - since > IDLE_REUSE:  # uvicorn may be closing it: not reused
                writer.close()
                reader = writer = None
        if reader is None:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout)
        return await asyncio.wait_for(self._exchange(reader, writer, request), self.timeout)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> tuple[int, bytes]:
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").lower().split("\r\n")
            status = int(lines[0].split()[1])
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            content = await reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            writer.close()
            raise
        if fields.get("connection") == "close":
            writer.close()
        else:
            self.idle.append((time.monotonic(), reader, writer))
        return status, content

    def close(self) -> None:
        for _, _, writer in self.idle:
            writer.close()
        self.idle.clear()


class Load:
    """Requests to one node, counted into a ``Phase``."""

    def __init__(self, node: NodeProcess, batch: int, timeout: float):
        self.client = RawHTTP("127.0.0.1", node.port, timeout)
        self.batch = batch_body(batch)
        self.retrieves = [retrieve_body(k) for k in range(64)]

    async def one(self, k: int, phase: Phase) -> None:
        path, body = (("/api/v1/events/batch", self.batch) if k % 2 == 0
                      else ("/api/v1/retrieve", self.retrieves[k % len(self.retrieves)]))
        await self.send(path, body, phase)

    async def send(self, path: str, body: bytes, phase: Phase) -> None:
        phase.sent += 1
        started = time.perf_counter()
        try:
            status, content = await self.client.post(path, body)
        except TimeoutError:
            phase.timeouts += 1
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            phase.connection_errors += 1
            return
        finally:
            phase.ended = time.perf_counter()
        if status < 300:
            phase.latencies.append(time.perf_counter() - started)
        elif status == 503 and b"overloaded" in content:
            phase.overloaded += 1
        else:
            phase.other_status[status] = phase.other_status.get(status, 0) + 1

    async def closed_loop(self, clients: int, seconds: float) -> Phase:
        phase, deadline = Phase("sustainable (closed loop)"), time.perf_counter() + seconds

        async def client(c: int) -> None:
            k = c
            while time.perf_counter() < deadline:
                await self.one(k, phase)
                k += clients

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        phase.seconds = time.perf_counter() - started
        return phase

    async def open_loop(self, name: str, rate: float, seconds: float, drain: float) -> Phase:
        phase = Phase(name, offered=rate)
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task] = set()
        start, k = loop.time(), 0
        while (due := start + k / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if len(tasks) >= CLIENT_CAP:
                phase.skipped += 1
            else:
                task = asyncio.create_task(self.one(k, phase))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            k += 1
        phase.seconds = loop.time() - start
        if tasks:
            await asyncio.wait(set(tasks), timeout=drain)
        return phase

    async def burst(self, name: str, count: int, body: bytes) -> Phase:
        phase = Phase(name)
        started = time.perf_counter()
        await asyncio.gather(*(self.send("/api/v1/events/batch", body, phase)
                               for _ in range(count)))
        phase.seconds = time.perf_counter() - started
        return phase


async def sample_rss(node: NodeProcess, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], node.memory_mb()[0])
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass


async def measured(node: NodeProcess, work) -> Phase:
    peak, stop = [node.memory_mb()[0]], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(node, peak, stop))
    phase = await work
    stop.set()
    await sampler
    phase.peak_rss, phase.rss_after = peak[0], node.memory_mb()[0]
    return phase


def big_body(chars: int = 8000, events: int = 1000) -> bytes:
    body = json.loads(batch_body(events, chars))
    for event in body["events"]:
        event["event_id"] = new_id()
    return json.dumps(body).encode()


async def run_config(node: NodeProcess, args: argparse.Namespace, rate: float | None,
                     ) -> tuple[list[Phase], float]:
    load = Load(node, args.batch, args.timeout)
    try:
        await load.closed_loop(args.clients, 2.0)  # warm-up: users exist, model and caches hot
        phases = []
        if rate is None:
            phase = await measured(node, load.closed_loop(args.clients, args.seconds))
            rate = len(phase.latencies) / (phase.ended - phase.started)
            phases.append(phase)
            log(f"sustainable: {rate:.1f} req/s with {args.clients} clients")
        for factor in (1, 4, 16):
            phase = await measured(node, load.open_loop(
                f"{factor}x open loop", rate * factor, args.seconds, args.timeout + 5))
            phases.append(phase)
            log(f"  {phase.name}: {len(phase.latencies)} ok, {phase.overloaded} 503, "
                f"peak RSS {phase.peak_rss:.0f} MB")
        body = big_body()
        phases.append(await measured(node, load.burst(
            f"{args.big} x {len(body) / 1e6:.0f} MB batches at once", args.big, body)))
        return phases, rate
    finally:
        load.client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def row(config: str, phase: Phase) -> str:
    answered = phase.sent - phase.connection_errors - phase.timeouts
    share = phase.overloaded / phase.sent if phase.sent else 0.0
    offered = f"{phase.offered:,.0f}/s" if phase.offered else "closed"
    other = ", ".join(f"{n} x {s}" for s, n in sorted(phase.other_status.items()))
    notes = "; ".join(filter(None, [
        f"{phase.skipped} not sent (client cap)" if phase.skipped else "",
        f"other: {other}" if other else "", f"{answered} answered"]))
    return (f"{config:<21} {phase.name:<28} {offered:>8} {phase.sent:>7} "
            f"{len(phase.latencies) / (phase.ended - phase.started):>8,.1f} "
            f"{percentile(phase.latencies, 0.5):>7.0f} {percentile(phase.latencies, 0.99):>7.0f} "
            f"{share:>6.1%} {phase.connection_errors:>5} {phase.timeouts:>5} "
            f"{phase.peak_rss:>7.0f} {phase.rss_after:>7.0f}  {notes}")


HEADER = (f"{'config':<21} {'phase':<28} {'offered':>8} {'sent':>7} {'ok/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'503':>6} {'conn':>5} {'t/o':>5} "
          f"{'peakRSS':>7} {'RSSafter':>7}  notes")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="closed-loop clients")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--big", type=int, default=20, help="8 MB batches sent at once")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout, seconds")
    parser.add_argument("--rate", type=float, default=None,
                        help="sustainable req/s to use instead of measuring it")
    parser.add_argument("--configs", default="off,on",
                        help="which of 'off' (limits off) and 'on' (the environment's limits, "
                        "else the defaults) to run, in order")
    parser.add_argument("--quick", action="store_true", help="4 s phases, 8 big batches")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.big = 4.0, 8
    started = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines, rate = [], args.rate
    wanted = args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="memorose-overload-") as tmp:
        for config, env in CONFIGS.items():
            if config.split()[1] not in wanted:
                continue
            node = NodeProcess(Path(tmp) / config.split()[1], env)
            node.start()
            log(f"{config}: node pid {node.pid} on {node.url}, RSS {node.memory_mb()[0]:.0f} MB")
            try:
                phases, rate = asyncio.run(run_config(node, args, rate))
            finally:
                code = node.stop()
            lines += [row(config, p) for p in phases]
            log(f"{config}: node stopped, exit code {code}")
    print(f"memorose overload bench | {started} | cpus={os.cpu_count()} | load avg {load_start} "
          f"| {platform.platform()} | Python {platform.python_version()}")
    print(f"sustainable load: {rate:.1f} req/s ({args.clients} clients, closed loop; half "
          f"batches of {args.batch} events, half retrieves); phases of {args.seconds:.0f} s; "
          f"RSS in MB; latency of admitted (2xx) requests")
    print(HEADER)
    print("-" * len(HEADER))
    print("\n".join(lines))
    print(f"load avg at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
