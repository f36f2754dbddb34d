"""L1 memories and L2 insights as the API shows them: one by id, or a user's, paged."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from memorose_dagster.errors import NotFound
from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.node.retrieval import Retriever
from memorose_dagster.records import (
    KIND_OF_LAYER,
    LAYER_OF_KIND,
    MEMORY_LAYERS,
    record_id,
    unpack,
)

VIEW_FIELDS = ("importance", "keywords", "entities", "valid_from", "valid_to", "created_at",
               "superseded_by", "pinned", "time_label", "topic", "member_ids", "derivation",
               "log_index")


class Memories:
    def __init__(self, store: Store, retriever: Retriever):
        self._store = store
        self._retriever = retriever

    def view(self, tenant: str, layer: str, record: dict[str, Any]) -> dict[str, Any]:
        """An L1 or L2 record as the API shows it, with provenance like retrieve results."""
        view = {"id": record["id"], "layer": layer, "content": record["content"],
                "user_id": record["user_id"], "stream_id": record.get("stream_id"),
                "provenance": self._retriever.provenance(tenant,
                                                         record.get("source_event_ids", []))}
        view.update({k: record[k] for k in VIEW_FIELDS if k in record})
        return view

    def find(self, tenant: str, memory_id: str) -> tuple[str, dict[str, Any]]:
        """The layer and record of an L1 memory or L2 insight."""
        for layer in MEMORY_LAYERS:
            record = self._retriever.record(tenant, layer, memory_id)
            if record is not None:
                return layer, record
        raise NotFound(f"no memory {memory_id!r}")

    def get(self, tenant: str, memory_id: str) -> dict[str, Any]:
        layer, record = self.find(tenant, memory_id)
        return self.view(tenant, layer, record)

    def page(self, tenant: str, user_id: str, layer: str, cursor: str,
             limit: int) -> dict[str, Any]:
        """A user's memories of one layer in id order, ``limit`` after ``cursor`` (an id):
        through the user's own listing, from the cursor on (one seek, however deep the page)."""
        out: list[dict[str, Any]] = []
        for record in self._user_records(tenant, layer, user_id, cursor):
            if len(out) == limit:
                return {"memories": out, "next_cursor": out[-1]["id"]}
            out.append(self.view(tenant, layer, record))
        return {"memories": out, "next_cursor": None}

    def filtered(self, tenant: str, user_id: str, layer: str, cursor: str, limit: int,
                 match: Callable[[dict[str, Any]], bool], budget: int) -> dict[str, Any]:
        """Like ``page``, keeping the records ``match`` accepts, but reading at most ``budget``
        records: ``next_cursor`` is the last id read, so a sparse filter answers in bounded time
        and goes on from there (None once the listing is done)."""
        out: list[dict[str, Any]] = []
        scanned = 0
        for record in self._user_records(tenant, layer, user_id, cursor):
            if len(out) == limit or scanned == budget:
                return {"memories": out, "next_cursor": cursor, "scanned": scanned}
            scanned, cursor = scanned + 1, record["id"]
            if match(record):
                out.append(self.view(tenant, layer, record))
        return {"memories": out, "next_cursor": None, "scanned": scanned}

    def _user_records(self, tenant: str, layer: str, user_id: str,
                      after: str) -> Iterator[dict[str, Any]]:
        kind = KIND_OF_LAYER[layer]
        prefix = keys.user_derived_prefix(kind, tenant, user_id)
        for key, _ in self._store.iter_prefix(prefix, prefix + after.encode()):
            rid = key[len(prefix):].decode()
            record = self._store.get(keys.derived(kind, tenant, rid)) if rid > after else None
            if record is not None:
                yield record

    def recent(self, tenant: str, after: int | None, limit: int,
               max_entries: int = 2000) -> dict[str, Any]:
        """The events, memories and insights of ``tenant`` committed after log index ``after``
        (or in the last few hundred commands), oldest first, the newest ``limit`` of them; and
        the log index read up to. Read from the log's per-index key lists: other tenants' keys
        are skipped by their prefix, never loaded."""
        applied = self._store.applied_index
        start = max(applied - RECENT_WINDOW, 0) if after is None else after
        found: deque[tuple[int, bytes]] = deque(maxlen=limit)
        scanned_to = start
        for n, (key, value) in enumerate(self._store.iter_prefix(keys.SEQ_PREFIX,
                                                                 keys.seq(start + 1))):
            if n == max_entries:
                break
            scanned_to = keys.seq_index(key)
            found.extend((scanned_to, k) for k in unpack(value) if _tenant_of(k) == tenant)
        items = []
        for index, key in found:
            record = self._store.get(key)
            if record is not None and record.get("tenant") == tenant:
                items.append(_change(LAYER_OF_KIND[keys.kind_of(key)], index, record))
        return {"items": items, "cursor": scanned_to, "applied_index": applied}


RECENT_WINDOW = 300  # log commands read back on a first look at what changed


def _tenant_of(key: bytes) -> str | None:
    """The tenant of an event, memory or insight key; None for every other kind of key."""
    parts = key.split(keys.SEP.encode(), 3)
    if parts[0] == b"e" and len(parts) >= 3:
        return parts[1].decode()
    if parts[0] == b"r" and len(parts) == 4 and parts[1].decode() in LAYER_OF_KIND:
        return parts[2].decode()
    return None


def _change(layer: str, index: int, record: dict[str, Any]) -> dict[str, Any]:
    change = {"layer": layer, "id": record_id(record), "log_index": index,
              "user_id": record["user_id"], "stream_id": record.get("stream_id"),
              "content": record["content"][:500]}
    if layer == "L0":
        change["timestamp"] = record["timestamp"]
    else:
        change["created_at"] = record.get("created_at")
        change["superseded_by"] = record.get("superseded_by")
    return change
