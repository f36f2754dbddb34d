"""What a node's indexes hold, read through their own readers (the indexer keeps the only
writers): the ids and layers of one user's documents in Tantivy, and of every row in LanceDB.
The audits compare them with RocksDB."""

from __future__ import annotations

import re
from pathlib import Path

import lancedb
import tantivy

from memorose_dagster.index.vectors import TABLE


def fulltext_ids(path: str | Path, users: list[tuple[str, str]]) -> dict[tuple[str, str],
                                                                         list[tuple[str, str]]]:
    """Per (tenant, user): the (id, layer) of every document in the Tantivy index at ``path``."""
    index = tantivy.Index.open(str(path))
    index.reload()
    schema, searcher = index.schema, index.searcher()
    total = max(searcher.num_docs, 1)  # never ask Tantivy for 0 hits: that panics
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    must = tantivy.Occur.Must
    for tenant, user in users:
        query = tantivy.Query.boolean_query([
            (must, tantivy.Query.term_query(schema, "tenant", tenant)),
            (must, tantivy.Query.term_query(schema, "user_id", user))])
        docs = (searcher.doc(address) for _, address in searcher.search(query, total).hits)
        out[(tenant, user)] = [(d["id"][0], d["layer"][0]) for d in docs]
    return out


def vector_ids(path: str | Path, model: str) -> list[dict[str, str]]:
    """Every row of the model's LanceDB table: id, tenant, user_id, layer (no vectors)."""
    db = lancedb.connect(str(path))
    name = TABLE + "_" + re.sub(r"[^A-Za-z0-9]+", "_", model)
    try:
        table = db.open_table(name)
    except (FileNotFoundError, ValueError):
        return []
    return (table.search().select(["id", "tenant", "user_id", "layer"]).limit(None)
            .to_arrow().to_pylist())
