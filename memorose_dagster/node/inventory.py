"""What the lake and the audits read from a node: records of a kind, dated, in pages; which
(tenant, day) partitions and (tenant, id)s a log range touched; the current rows of given ids,
read by key (what an incremental lake write merges); and a census of the node's indexes.

A record's day is the ingest day (UTC, from the ULID) of the earliest event it rests on: its
own id for an event, its ``source_event_ids`` for memories, insights and relations, its
memories for an entity, its target for a vector or an access count. A tombstone of a derived
record has nothing left to date it by and is ``undated``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from memorose_dagster.log import keys
from memorose_dagster.log.store import Store, ingest_day
from memorose_dagster.records import KIND_OF_LAYER, RECORD_TYPES, unpack, vector_from_bytes

UNDATED = "undated"
KINDS = ("event", "l1", "l2", "entity", "relation", "vector", "tombstone", "access")


def prefix(kind: str) -> bytes:
    """The key prefix holding every record of ``kind``, all tenants."""
    if kind == "event":
        return keys.EVENTS_PREFIX
    if kind in ("vector", "tombstone"):
        return kind[0].encode() + keys.SEP.encode()
    return keys.derived_kind_prefix(kind)


class Dater:
    """Dates records, remembering the day of every record it looked up."""

    def __init__(self, store: Store):
        self._store = store
        self._days: dict[tuple[str, str, str], str] = {}

    def day(self, record: dict[str, Any]) -> str:
        kind = record["kind"]
        if kind == "event":
            return ingest_day(record["event_id"]) or UNDATED
        if kind in ("l1", "l2", "relation"):
            sources = record.get("source_event_ids") or []
            return (ingest_day(min(sources)) if sources else "") or UNDATED
        if kind == "entity":
            days = [self.target_day(record["tenant"], "l1", m) for m in record["memory_ids"]]
            return min((d for d in days if d != UNDATED), default=UNDATED)
        if kind == "vector":
            return self.target_day(record["tenant"], KIND_OF_LAYER.get(record["layer"], ""),
                                   record["record_id"])
        if kind == "access":
            return self.target_day(record["tenant"], record["target_kind"], record["record_id"])
        if kind == "tombstone" and record["target_kind"] == "event":
            return ingest_day(record["target_id"]) or UNDATED
        return UNDATED

    def target_day(self, tenant: str, kind: str, rid: str) -> str:
        if kind == "event":
            return ingest_day(rid) or UNDATED
        key = (tenant, kind, rid)
        if key not in self._days:
            target = self._store.get(keys.target_key(tenant, kind, rid)) if kind else None
            self._days[key] = UNDATED if target is None else self.day(target)
        return self._days[key]

    def user_of(self, tenant: str, kind: str, rid: str) -> str:
        target = self._store.get(keys.target_key(tenant, kind, rid)) if kind else None
        return "" if target is None else target["user_id"]


def lake_row(dater: Dater, record: dict[str, Any]) -> dict[str, Any]:
    """A record as the lake stores it: dated; a vector described, without its values."""
    row = {**record, "day": dater.day(record)}
    if record["kind"] == "vector":
        values = vector_from_bytes(row.pop("values"))
        row.update(dim=int(values.shape[0]), norm=float(np.linalg.norm(values)),
                   user_id=dater.user_of(record["tenant"], KIND_OF_LAYER.get(record["layer"], ""),
                                         record["record_id"]))
    return row


def lake_page(store: Store, kind: str, days: set[str] | None, tenant: str | None,
              after: bytes | None, limit: int, with_values: bool = False,
              ) -> tuple[list[dict[str, Any]], bytes | None]:
    """Records of ``kind`` (of ``days`` and ``tenant`` if given), dated, in key order: up to
    ``limit`` after the key ``after``. Returns the page and the key to continue after."""
    dater = Dater(store)
    out: list[dict[str, Any]] = []
    # A page starts with one seek to its cursor (which it skips): paging through a million
    # keys costs each page its own keys, not all the keys before it.
    scan = store.iter_prefix(prefix(kind), after)
    if after is not None:
        scan = itertools.dropwhile(lambda item: item[0] <= after, scan)
    for key, value in scan:
        record = unpack(value)
        if tenant is not None and record["tenant"] != tenant:
            continue
        row = lake_row(dater, record)
        if days is not None and row["day"] not in days:
            continue
        if with_values and kind == "vector":
            row["values"] = record["values"]
        out.append(row)
        if len(out) == limit:
            return out, key
    return out, None


def touched(store: Store, after: int, until: int | None, limit: int) -> dict[str, Any]:
    """The (tenant, day) partitions and the (tenant, id)s written by log entries in
    (after, until]."""
    entries, scanned_to = store.scan_log(after, limit, None, until)
    dater = Dater(store)
    days, ids = set(), set()
    for _, records in entries:
        for record in records:
            days.add((record["tenant"], dater.day(record)))
            ids.add((record["tenant"], _id(record)))
    return {"touched": sorted(days), "ids": [list(i) for i in sorted(ids)],
            "next_cursor": scanned_to, "applied_index": store.applied_index}


def _keys_of(tenant: str, rid: str) -> Iterator[bytes]:
    """Every key a lake row with id ``rid`` can live at: the record of each kind, its vector
    and access count (keyed by their target), and a tombstone of it as any kind."""
    yield keys.event(tenant, rid)
    for kind in ("l1", "l2", "entity", "relation", "access"):
        yield keys.derived(kind, tenant, rid)
    yield keys.vector(tenant, rid)
    for kind in RECORD_TYPES:
        yield keys.tombstone(tenant, kind, rid)


def rows_of(store: Store, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
    """The lake rows of every table (dated, vectors described) whose id is one of ``ids`` in
    ``tenant``, read by key: one get per place a row can be, no scan."""
    dater = Dater(store)
    out = []
    for rid in ids:
        for key in _keys_of(tenant, rid):
            record = store.get(key)
            if record is not None:
                out.append(lake_row(dater, record))
    return out


def _id(record: dict[str, Any]) -> str:
    kind = record["kind"]
    if kind == "event":
        return record["event_id"]
    if kind in ("vector", "access"):
        return record["record_id"]
    if kind == "tombstone":
        return record["target_id"]
    return record["id"]
