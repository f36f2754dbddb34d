"""Event batches: a request body to the log command that stores its events.

Reading a batch (the JSON parse, the checks for what the store cannot carry, the schema, the
events and their msgpack command) was about 60% of what held the interpreter lock while a node
took batched ingest, all of it on the event loop. A large body is therefore prepared in a worker
process (``IngestPool``), the node's process only sends the bytes and gets the command back.
What comes back is exactly the command the node would have made itself, but for the ids the
node makes: those are left as placeholders of the same length and filled in here
(``Prepared.command``), so every event id still comes from this process and ids sort in the
order they were made (``ids.new_ids``). A small body, a node without workers, or a worker that
died is prepared in this process by the same function: the answer is the same either way, as
the tests hold it to.

Imports only the body checks and the schemas (and what records need), so that a worker starts
in a fraction of a second and holds none of the node's indexes or models.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
from starlette.concurrency import run_in_threadpool

from api.body import decode, parse_object
from api.schemas import EventBatchIn, EventIn
from memorose_dagster.errors import InvalidInput, MemoroseError
from memorose_dagster.ids import new_ids
from memorose_dagster.records import Event, event_record, pack

log = logging.getLogger("memorose.api")

OFFLOAD_BYTES = 32 * 1024  # smaller bodies (about 150 short events) are read in this process
_ROOT = str(Path(__file__).resolve().parent.parent)  # where ``api`` is imported from
PLACEHOLDER = "0" * 26  # where an id made by the node goes: a ULID's length, never one made
_ID_VALUE = pack("event_id") + pack(PLACEHOLDER)


def make_event(tenant: str, body: EventIn, field: str, limit: int, now: float,
               made_id: str | None) -> Event:
    if len(body.content) > limit:
        raise InvalidInput(f"{field}content: longer than {limit} characters",
                           field=f"{field}content")
    return Event(event_id=body.event_id or made_id, tenant=tenant, user_id=body.user_id,
                 stream_id=body.stream_id, content=body.content,
                 timestamp=body.timestamp.timestamp() if body.timestamp else now,
                 content_type=body.content_type, metadata=body.metadata)


@dataclass
class Prepared:
    """A batch read and checked, as its log command. ``ids`` holds each event's id as sent
    (None: the node makes it); ``slots`` where, in ``payload``, the made ids go; ``sent``
    the events with a client-chosen id (index, record), for the resend check."""

    payload: bytes
    ids: list[str | None]
    slots: list[int]
    sent: list[tuple[int, dict[str, Any]]]

    def command(self, now_ms: int) -> tuple[bytes, list[str]]:
        """The command with ids made for the events sent without one, and every event's id."""
        made = new_ids(len(self.slots), now_ms)
        if not made:
            return self.payload, list(self.ids)  # type: ignore[arg-type]
        payload = bytearray(self.payload)
        for slot, event_id in zip(self.slots, made, strict=True):
            payload[slot:slot + 26] = event_id.encode()
        it = iter(made)
        return bytes(payload), [i if i is not None else next(it) for i in self.ids]


def prepare(raw: bytes | bytearray, tenant: str, now: float, max_batch: int,
            max_content: int) -> Prepared:
    """Read a batch body (``POST /api/v1/events/batch``) into its command: InvalidInput
    (naming ``events.{i}.{field}``) for what the API refuses, as ``read_body`` does."""
    text = decode(raw)
    data = parse_object(text)
    del text
    batch = EventBatchIn.model_validate(data).events
    del data
    if len(batch) > max_batch:
        raise InvalidInput(f"events: {len(batch)} events, over the batch limit of {max_batch}",
                           field="events", limit=max_batch)
    parts = [msgpack.Packer(use_bin_type=True).pack_array_header(len(batch))]
    size = len(parts[0])
    ids, slots, sent = [], [], []
    for i, body in enumerate(batch):
        event = make_event(tenant, body, f"events.{i}.", max_content, now,
                           PLACEHOLDER if body.event_id is None else None)
        record = event_record(event)
        packed = pack(record)
        ids.append(body.event_id)
        if body.event_id is None:
            slots.append(size + packed.index(_ID_VALUE) + len(_ID_VALUE) - 26)
        else:
            sent.append((i, record))
        parts.append(packed)
        size += len(packed)
    chosen = [i for i in ids if i is not None]
    if len(set(chosen)) < len(chosen):
        raise InvalidInput("events: the same event_id twice in one batch", field="events")
    return Prepared(b"".join(parts), ids, slots, sent)


def _answer(request: tuple) -> Prepared | tuple:
    """A worker's answer: the batch prepared, ("refused", class, message, details) for what the
    API refuses (the exception's own pickling would lose the details), ("failed", reason) for
    anything else (the node reads that batch itself, and logs what it meets)."""
    try:
        return prepare(*request)
    except MemoroseError as exc:
        return "refused", type(exc), exc.message, exc.details
    except Exception as exc:
        return "failed", repr(exc)


def _send(stream: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=5)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    """The next message, or EOFError when the other end has gone."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the other end closed the pipe")
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe")
    return pickle.loads(data)


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """A worker's loop (``worker_main``): a request in, its answer out, until the
    node closes the pipe or is gone (a killed node leaves no worker behind)."""
    while True:
        try:
            request = _receive(requests)
        except EOFError:
            return
        _send(answers, os.getpid() if request is None else _answer(request))


def default_workers() -> int:
    """One worker per core past the first, at most four: none on one core."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class _Worker:
    """One worker process; its stdin carries requests, its stdout answers."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from api.batches import worker_main; worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={
                **os.environ, "PYTHONPATH": os.pathsep.join(
                    [_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])})

    def call(self, request: tuple | None) -> Any:
        _send(self.process.stdin, request)  # type: ignore[arg-type]
        return _receive(self.process.stdout)  # type: ignore[arg-type]

    def stop(self, wait: float = 5.0) -> None:
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
            self.process.wait(wait)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]


class IngestPool:
    """Worker processes that prepare large batch bodies (``worker_main``, started with the
    node's interpreter; a request's bytes go down a pipe and its command comes back). Workers
    start in the background; until one has answered, batches are read in the node's process,
    so no request waits for a worker's start. A worker that died is replaced the same way, and
    the batch that met it is read in the node's process."""

    def __init__(self, workers: int, timeout: float = 10.0):
        self.workers = workers
        self.timeout = timeout  # a worker that has not answered by then is killed
        self.offloaded = 0  # batches a worker read
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._ready: list[_Worker] = []  # answering, idle or busy
        self._starting = 0
        self._lock = threading.Condition()  # notified as a start ends
        self._closed = False

    def _fill(self) -> None:
        """Start, in the background, the workers that are missing."""
        with self._lock:
            missing = 0 if self._closed else self.workers - len(self._ready) - self._starting
            self._starting += max(0, missing)
        for _ in range(missing):
            threading.Thread(target=self._start_one, name="memorose-ingest-worker-start",
                             daemon=True).start()

    def _start_one(self) -> None:
        worker: _Worker | None = None
        try:
            worker = _Worker()
            worker.call(None)  # answers once its imports are done
        except (OSError, EOFError, pickle.UnpicklingError):
            log.warning("an ingest worker did not start; batches are read in the node's "
                        "process")
            if worker is not None:
                worker.process.kill()  # ours
                worker.stop()
            worker = None
        with self._lock:
            self._starting -= 1
            self._lock.notify_all()
            if worker is not None and not self._closed:
                self._ready.append(worker)
                self._idle.put(worker)
                return
        if worker is not None:
            worker.stop()

    def _take(self) -> _Worker | None:
        while True:
            with self._lock:
                if self._closed or self.workers <= 0:
                    return None
                ready = len(self._ready)
            if not ready:
                self._fill()
                return None
            try:
                return self._idle.get(timeout=0.5)  # every worker busy: wait for one
            except queue.Empty:
                continue  # look again: closed meanwhile, or the workers died

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(worker)
                return
        worker.stop()

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._ready:
                self._ready.remove(worker)
        worker.process.kill()  # ours; gone already, or it answered nonsense
        worker.stop()
        self._fill()

    def _call(self, request: tuple) -> Any:
        """A worker's answer, or None when no worker is ready (or it died meanwhile)."""
        worker = self._take()
        if worker is None:
            return None
        # A worker that hangs is killed, and so met as one that died: its pipe closes.
        watchdog = threading.Timer(self.timeout, worker.process.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            answer = worker.call(request)
        except (OSError, EOFError, pickle.UnpicklingError):
            log.warning("ingest worker %d died or did not answer within %.0f s (exit code "
                        "%s); starting another, and reading this batch in the node's process",
                        worker.process.pid, self.timeout, worker.process.poll())
            self._drop(worker)
            return None
        finally:
            watchdog.cancel()
        self._give_back(worker)
        self.offloaded += 1
        return answer

    def start(self, timeout: float = 30.0) -> list[int]:
        """Start the workers and wait until they answer (a node's start pays for them, not
        its first large batches); returns their pids."""
        self._fill()
        with self._lock:
            self._lock.wait_for(lambda: self._closed or self._starting == 0, timeout)
        return self.pids()

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.process.pid for w in self._ready)

    async def prepare(self, raw: bytearray, tenant: str, now: float, max_batch: int,
                      max_content: int) -> Prepared:
        answer = None
        if len(raw) >= OFFLOAD_BYTES and self.workers > 0:
            answer = await run_in_threadpool(
                self._call, (raw, tenant, now, max_batch, max_content))
        if isinstance(answer, Prepared):
            return answer
        if isinstance(answer, tuple) and answer[0] == "refused":
            _, kind, message, details = answer
            raise kind(message, **details)
        return prepare(raw, tenant, now, max_batch, max_content)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._ready = self._ready, []
        for worker in workers:
            worker.stop()


def worker_main() -> None:
    """A worker process: the answers' channel is the real stdout, and anything printed goes to
    stderr instead; a Ctrl-C stops the node, which then stops this."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, answers)
