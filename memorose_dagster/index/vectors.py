"""Vectors in LanceDB: one table per node, rows scoped by tenant and user.

Writes come in batches from the node's indexer (one LanceDB version per batch, not per row);
``optimize`` compacts versions and builds an ANN index once the table is large enough that a
filtered flat scan would cost more than the index.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import Bitmap, IvfFlat, IvfHnswSq, IvfPq

from memorose_dagster.index.user_vectors import UserVectors

TABLE = "vectors"
ANN_MIN_ROWS = 20_000
# The table's ANN index serves only users too large for the in-memory view. IVF-FLAT keeps up
# with new rows at a small cost (an optimize after 20k new rows: ~0.3-1.3 s of CPU; IVF-HNSW-SQ
# ~5.5 s, which a bulk derivation paid every 20k rows); its recall and latency against the
# others: bench/ann_recall.py.
ANN_INDEXES = {"ivf_flat": IvfFlat, "ivf_hnsw_sq": IvfHnswSq, "ivf_pq": IvfPq}
DEFAULT_ANN = "ivf_flat"


@dataclass(frozen=True, slots=True)
class VectorRow:
    id: str
    tenant: str
    user_id: str
    stream_id: str
    layer: str
    vector: np.ndarray


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    layer: str
    similarity: float


def _key(tenant: str, record_id: str) -> str:
    return f"{tenant}\x1f{record_id}"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class VectorIndex:
    def __init__(self, path: str | Path, dim: int, model: str, ann: str = DEFAULT_ANN):
        if ann not in ANN_INDEXES:
            raise ValueError(f"ann: one of {', '.join(ANN_INDEXES)}, not {ann!r}")
        self._ann = ann
        self._db = lancedb.connect(str(path))
        self._dim = dim
        self.model = model  # one table per embedding model: vectors of others are not indexed
        self._schema = pa.schema([
            pa.field("key", pa.string()),  # tenant \x1f id: an id is unique per tenant only
            pa.field("id", pa.string()), pa.field("tenant", pa.string()),
            pa.field("user_id", pa.string()), pa.field("stream_id", pa.string()),
            pa.field("layer", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim)),
        ])
        self._lock = threading.Lock()
        table = TABLE + "_" + re.sub(r"[^A-Za-z0-9]+", "_", model)
        try:
            self._table = self._db.create_table(table, schema=self._schema, exist_ok=True)
        except ValueError:  # LanceDB: the table exists with another schema
            self._table = self._db.open_table(table)
        # A table of an older layout (rows keyed by id alone) is dropped: the indexer sees
        # ``rebuilt`` and refills it from RocksDB.
        self.rebuilt = self._table.schema.names != self._schema.names
        if self.rebuilt:
            self._db.drop_table(table)
            self._table = self._db.create_table(table, schema=self._schema)
        self._has_ann = bool(self._table.list_indices())
        self._memory = UserVectors(dim, self._user_rows)

    def _user_rows(self, tenant: str, user_id: str):
        """Every row of one user, from the table (what the in-memory view starts from)."""
        table = (self._table.search().where(f"tenant = {_quote(tenant)} AND "
                                            f"user_id = {_quote(user_id)}")
                 .select(["id", "layer", "stream_id", "vector"]).limit(None).to_arrow())
        if table.num_rows == 0:
            return []
        vectors = np.asarray(table.column("vector").combine_chunks().flatten()
                             .to_numpy(zero_copy_only=False), dtype=np.float32)
        return zip(table.column("id").to_pylist(), table.column("layer").to_pylist(),
                   table.column("stream_id").to_pylist(), vectors.reshape(-1, self._dim),
                   strict=True)

    def upsert(self, rows: list[VectorRow]) -> None:
        if not rows:
            return
        data = pa.Table.from_pylist([
            {"key": _key(r.tenant, r.id), "id": r.id, "tenant": r.tenant, "user_id": r.user_id,
             "stream_id": r.stream_id, "layer": r.layer,
             "vector": np.asarray(r.vector, dtype=np.float32)} for r in rows
        ], schema=self._schema)
        with self._lock:
            (self._table.merge_insert("key").when_matched_update_all()
             .when_not_matched_insert_all().execute(data))
            self._memory.upsert((r.tenant, r.user_id, r.id, r.layer, r.stream_id, r.vector)
                                for r in rows)

    def delete(self, keys: list[tuple[str, str]]) -> None:
        """Drop the rows of these (tenant, id) pairs."""
        if keys:
            with self._lock:
                self._table.delete("key IN (" + ", ".join(_quote(_key(t, i)) for t, i in keys)
                                   + ")")
                self._memory.delete(keys)

    def clear(self) -> None:
        with self._lock:
            self._table.delete("true")
            self._memory.clear()

    def load_user(self, tenant: str, user_id: str) -> bool:
        """Read a user's rows into memory before their first question; False when they do not
        fit (their searches go to the table)."""
        return self._memory.load(tenant, user_id)

    @property
    def memory_rows(self) -> tuple[int, int]:
        """(rows held in memory, the most it holds)."""
        return self._memory.rows, self._memory.max_rows

    @property
    def has_ann(self) -> bool:
        """Whether the table has its ANN index (built once it held ``ANN_MIN_ROWS``)."""
        return self._has_ann

    @property
    def dim(self) -> int:
        return self._dim

    def count(self) -> int:
        return self._table.count_rows()

    def optimize(self) -> None:
        """Compact versions; build the ANN and scalar indexes once the table is large."""
        self._table.optimize()
        if not self._has_ann and self._table.count_rows() >= ANN_MIN_ROWS:
            self._table.create_index("user_id", config=Bitmap())
            self._table.create_index("vector",
                                     config=ANN_INDEXES[self._ann](distance_type="cosine"))
            self._has_ann = True

    def search(self, vector: np.ndarray, tenant: str, user_id: str, limit: int,
               stream_id: str | None = None, layers: list[str] | None = None,
               exact: bool = False) -> list[VectorHit]:
        """The ``limit`` nearest rows of one user (cosine): exactly, over the user's rows held
        in memory; through the table (its ANN index when there is one) for a user too large
        to hold; ``exact``: a flat scan of the table (what both are measured against)."""
        if not exact:
            found = self._memory.search(vector, tenant, user_id, limit, stream_id, layers)
            if found is not None:
                return [VectorHit(rid, layer, similarity) for rid, layer, similarity in found]
        return self.search_table(vector, tenant, user_id, limit, stream_id, layers, exact)

    def search_table(self, vector: np.ndarray, tenant: str, user_id: str, limit: int,
                     stream_id: str | None = None, layers: list[str] | None = None,
                     exact: bool = False) -> list[VectorHit]:
        """Through the table only: its ANN index where it covers the rows (``exact``: a flat
        scan)."""
        where = f"tenant = {_quote(tenant)} AND user_id = {_quote(user_id)}"
        if stream_id is not None:
            where += f" AND stream_id = {_quote(stream_id)}"
        if layers:
            where += " AND layer IN (" + ", ".join(_quote(layer) for layer in layers) + ")"
        query = (self._table.search(np.asarray(vector, dtype=np.float32))
                 .distance_type("cosine").where(where, prefilter=True)
                 .select(["id", "layer", "_distance"]).limit(limit))
        if exact:
            query = query.bypass_vector_index()
        return [VectorHit(row["id"], row["layer"], 1.0 - float(row["_distance"]))
                for row in query.to_list()]
