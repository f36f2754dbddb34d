"""L1 memories and L2 insights as the API shows them: one by id, or a user's, paged."""

from __future__ import annotations

from typing import Any

from memorose_dagster.errors import NotFound
from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.node.retrieval import Retriever
from memorose_dagster.records import KIND_OF_LAYER, MEMORY_LAYERS

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
        """A user's memories of one layer in id order, ``limit`` after ``cursor`` (an id)."""
        out: list[dict[str, Any]] = []
        prefix = keys.derived_prefix(KIND_OF_LAYER[layer], tenant)
        for record in self._store.records(prefix):
            if record.get("user_id") != user_id or record["id"] <= cursor:
                continue
            if len(out) == limit:
                return {"memories": out, "next_cursor": out[-1]["id"]}
            out.append(self.view(tenant, layer, record))
        return {"memories": out, "next_cursor": None}
