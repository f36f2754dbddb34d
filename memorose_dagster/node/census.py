"""A census of one node: per user and layer, how many records RocksDB holds, how many of them
have a vector of the node's model, and how many documents Tantivy and rows LanceDB hold; and
every index entry with no record behind it (a stray), saying whether a tombstone names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memorose_dagster.index.census import fulltext_ids, vector_ids
from memorose_dagster.log import keys
from memorose_dagster.log.store import Store

LAYERS = (("L0", "event"), ("L1", "l1"), ("L2", "l2"))


def _record_ids(store: Store, kind: str, tenant: str, user: str) -> set[str]:
    if kind == "event":
        return set(store.user_event_ids(tenant, user))
    head = keys.user_derived_prefix(kind, tenant, user)
    return {key[len(head):].decode() for key, _ in store.iter_prefix(head)}


def _with_vector(store: Store, tenant: str, ids: set[str], model: str) -> int:
    found = (store.get(keys.vector(tenant, rid)) for rid in ids)
    return sum(1 for v in found if v is not None and v.get("model") == model)


def census(store: Store, home: Path, model: str) -> dict[str, Any]:
    rows_by_user: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in vector_ids(home / "lancedb", model):
        rows_by_user.setdefault((row["tenant"], row["user_id"]), []).append(row)
    users = sorted(set(store.users()) | set(rows_by_user))
    text = fulltext_ids(home / "tantivy", users)
    counts, strays = [], []
    for tenant, user in users:
        for layer, kind in LAYERS:
            ids = _record_ids(store, kind, tenant, user)
            in_text = {rid for rid, lay in text[(tenant, user)] if lay == layer}
            in_vectors = {r["id"] for r in rows_by_user.get((tenant, user), ())
                          if r["layer"] == layer}
            counts.append({"tenant": tenant, "user_id": user, "layer": layer,
                           "rocksdb": len(ids),
                           "rocksdb_vectors": _with_vector(store, tenant, ids, model),
                           "tantivy": len(in_text), "lancedb": len(in_vectors)})
            for index, held in (("tantivy", in_text), ("lancedb", in_vectors)):
                strays += [{"tenant": tenant, "user_id": user, "layer": layer, "index": index,
                            "id": rid, "tombstoned": store.get(
                                keys.tombstone(tenant, kind, rid)) is not None}
                           for rid in sorted(held - ids)]
    return {"model": model, "counts": counts, "strays": strays}
