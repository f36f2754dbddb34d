"""What a run works on: the events its log range or partition selects, read from the cluster."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
import numpy as np

from memorose_dagster.ids import id_time_ms
from memorose_dagster.models.embedding import Embedder
from memorose_dagster.pipeline.partitions import LogRange
from memorose_dagster.pipeline.resources import ClusterResource
from memorose_dagster.records import LAYER_OF_KIND, Vector, record_id, vector_to_bytes

T = TypeVar("T")
R = TypeVar("R")


def select_events(context: dg.AssetExecutionContext, config: LogRange,
                  cluster: ClusterResource) -> list[dict[str, Any]]:
    if config.until > 0:
        return list(cluster.read(config.after, config.until, ["event"]))
    if not context.has_partition_key:
        return list(cluster.read(config.after, None, ["event"]))
    window = context.partition_time_window
    start, end = int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
    if config.after == 0:  # a backfill of one day: a range scan of its ids, not the log
        return list(cluster.events_between(start, end))
    events = cluster.read(config.after, None, ["event"])
    return [e for e in events if start <= id_time_ms(e["event_id"]) < end]


LOOKAHEAD_ENTRIES = 8  # log entries read past a run's range to see whose events keep coming
MAX_DEFER_ENTRIES = 2000  # a user's whole-history products are never older than this


@dataclass(frozen=True)
class Coming:
    """Who has events committed after a run's range. ``ahead``: in the next
    ``LOOKAHEAD_ENTRIES`` entries (up to the horizon). ``in_backlog``: in a chunk of a backlog,
    each of its users whose last event lies in a later chunk of the same backlog, by the node's
    last-event index. The lookahead alone missed many: with 250 users of ~20-turn sessions a
    user's next session is ~10 entries of 500 events away, and each chunk derived the graph and
    insights of every user it touched, over their whole history."""

    ahead: frozenset[tuple[str, str]] = frozenset()
    in_backlog: frozenset[tuple[str, str]] = frozenset()


def users_coming(config: LogRange, cluster: ClusterResource,
                 users: Iterable[tuple[str, str]]) -> Coming:
    """Of the run's ``users`` and the next entries', who has events committed after its range,
    up to its horizon (nobody for a backfill, nor for the last chunk of a backlog: what comes
    after it may be derived already)."""
    if config.until == 0 or 0 < config.horizon <= config.until:
        return Coming()
    ahead = cluster.users_after(config.until, LOOKAHEAD_ENTRIES, config.horizon or None)
    later = cluster.continuing(users, config.until, config.horizon) if config.horizon else set()
    return Coming(frozenset(ahead), frozenset(later))


def deferred(user: tuple[str, str], coming: Coming, stored: list[dict[str, Any]],
             until: int) -> bool:
    """Whether to leave a user's whole-history products (graph, insights) to the next run:
    the user has more events committed after this range, so the next run derives them again
    anyway; a bulk load then derives them once it has passed, not once per range, and what is
    derived in the end is the same. A later chunk of the same backlog holding the user's last
    event derives them for certain (the last chunk defers nobody): always deferred. Else
    bounded: never when they were last written more than ``MAX_DEFER_ENTRIES`` log entries ago,
    or never, so a user who never stops talking still gets them."""
    if user in coming.in_backlog:
        return True
    if user not in coming.ahead or not stored:
        return False
    return until - max(r.get("log_index", 0) for r in stored) < MAX_DEFER_ENTRIES


def users_of(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted({(r["tenant"], r["user_id"]) for r in records})


READ_AHEAD = 2  # items whose reads run ahead of the one being worked on


def read_ahead(items: Iterable[T], read: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Each item with ``read(item)``, in order, the next items' reads (the node's work, mostly)
    running on a worker thread while the caller works on one, ``READ_AHEAD`` at most. For an
    asset that reads everything before it commits anything: reading ahead reads the same."""
    pending = iter(items)
    ahead: collections.deque[tuple[T, Future[R]]] = collections.deque()
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader:
        while True:
            while len(ahead) < READ_AHEAD and (item := next(pending, _END)) is not _END:
                ahead.append((item, reader.submit(read, item)))
            if not ahead:
                return
            item, answer = ahead.popleft()
            yield item, answer.result()


_END: Any = object()


def by_stream(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A user's events grouped by stream, each stream in the order the events were made."""
    streams: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(events, key=lambda e: e["event_id"]):
        streams.setdefault(event["stream_id"], []).append(event)
    return streams


def with_previous(events: list[dict[str, Any]],
                  streams: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``events`` plus, per stream, the event just before the first of them: its context (the
    turn after it) has just arrived, so its memory is derived again."""
    chosen = {e["event_id"]: e for e in events}
    for stream in streams.values():
        for i, event in enumerate(stream):
            if event["event_id"] in chosen:
                if i > 0:
                    chosen.setdefault(stream[i - 1]["event_id"], stream[i - 1])
                break
    return list(chosen.values())


def embed(records: list[dict[str, Any]], embedder: Embedder) -> list[Vector]:
    """Vectors of each record's text, as log records (layer from the record kind)."""
    values = embedder.embed([r["content"] for r in records])
    return [Vector(tenant=r["tenant"], record_id=record_id(r), layer=LAYER_OF_KIND[r["kind"]],
                   model=embedder.name, values=vector_to_bytes(v))
            for r, v in zip(records, values, strict=True)]


class EmbedBeside:
    """Embeds records on a worker thread while the caller goes on deriving (the next user's
    reads and consolidation): the model runs outside the GIL, so its batches fill the core the
    Python would leave idle. Records are sent in lots of ``lot`` texts, so batches stay full and
    sorted by length as in one call; ``vectors()`` waits for all of them, in order."""

    def __init__(self, embedder: Embedder, lot: int = 256):
        self._embedder = embedder
        self._lot = lot
        self._waiting: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embed-beside")
        self._lots: list[Future[list[Vector]]] = []
        self.sent: set[str] = set()  # ids of the records added

    def __enter__(self) -> EmbedBeside:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, records: list[dict[str, Any]]) -> None:
        self._waiting += records
        self.sent.update(record_id(r) for r in records)
        self._send(whole_only=True)

    def _send(self, whole_only: bool = False) -> None:
        while len(self._waiting) >= (self._lot if whole_only else 1):
            lot, self._waiting = self._waiting[:self._lot], self._waiting[self._lot:]
            self._lots.append(self._pool.submit(embed, lot, self._embedder))

    def lots(self) -> Iterator[list[Vector]]:
        """Each lot's vectors as it is done (the next lot embeds while the caller uses one)."""
        self._send()
        while self._lots:
            yield self._lots.pop(0).result()

    def vectors(self) -> list[Vector]:
        return [v for lot in self.lots() for v in lot]


def needs_vector(record: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether ``record`` must be embedded: a record stored with the same text by the same logic
    already has its vector, since a record and its vector are committed in one command."""
    return stored is None or stored.get("content") != record["content"] \
        or stored.get("derivation") != record.get("derivation")


def unchanged(record: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """``record`` is stored exactly so (but for the log index it was written at)."""
    if stored is None:
        return False
    return {k: v for k, v in stored.items() if k != "log_index"} \
        == {k: v for k, v in record.items() if k != "log_index"}


def with_vectors(records: list[dict[str, Any]],
                 vectors: list[Vector]) -> list[list[dict[str, Any]]]:
    """Commit groups: each record with its vector (if it has a new one)."""
    by_id = {v.record_id: v.to_dict() for v in vectors}
    return [[r, by_id[record_id(r)]] if record_id(r) in by_id else [r] for r in records]


def vectors_are_unit(vectors: list[Vector], dim: int) -> bool:
    for vector in vectors:
        values = np.frombuffer(vector.values, dtype="<f4")
        if values.shape != (dim,) or not abs(float(np.linalg.norm(values)) - 1.0) < 1e-3:
            return False
    return True


def range_metadata(config: LogRange, records_in: int, records_out: int,
                   seconds: float) -> dict[str, Any]:
    return {"log_after": config.after, "log_until": config.until, "records_in": records_in,
            "records_out": records_out, "seconds": round(seconds, 3)}
