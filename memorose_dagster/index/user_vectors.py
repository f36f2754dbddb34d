"""Each recently asked user's vectors in memory, searched exactly: one matrix product.

A LanceDB query costs ~3 ms of planning and execution even through its ANN index, and ~20 ms as a
filtered flat scan of a table that has not been compacted yet (measured on 2 cores, 16k rows);
the same top 30 of one user's 6,000 rows as ``matrix @ query`` costs ~1 ms and is exact. The
table stays the durable index; this is a view of it, loaded per user on first use and kept in
step by the writes that go through ``VectorIndex`` (the indexer's), least recently asked users
out first once ``max_rows`` is reached.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

DEFAULT_MAX_ROWS = 250_000  # ~400 MB of 384-d float32 rows with their ids


def max_rows_from_env() -> int:
    configured = os.environ.get("MEMOROSE_VECTOR_CACHE_ROWS", "")
    return int(configured) if configured.isdigit() else DEFAULT_MAX_ROWS


class _User:
    """One user's rows as a matrix that writes change in place: a new or rewritten row is
    appended, a deleted one marked dead, and the matrix is rebuilt only when dead rows
    reach half the live ones. (Rebuilding it from every row after each write cost ~6 ms at 5,200
    rows, on the next search: a retrieve beside the pipeline paid it again and again.)

    A search takes the first ``size`` rows and a copy of their ``alive`` flags under the lock;
    writes after that only append past those rows or flip flags it does not read, and a grown
    or compacted matrix is a new array: a search running beside writes sees the rows as they
    were when it started, as before."""

    def __init__(self, dim: int, rows: dict[str, tuple[str, str, np.ndarray]]):
        """``rows``: id -> (layer, stream_id, vector)."""
        self.ids = list(rows)
        self.where = {rid: i for i, rid in enumerate(self.ids)}
        self.size = len(rows)
        capacity = max(16, self.size + self.size // 4)
        values = list(rows.values())
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        if values:
            self.matrix[:self.size] = np.stack([v[2] for v in values])
        self.layers = np.empty(capacity, dtype=object)
        self.layers[:self.size] = [v[0] for v in values]
        self.streams = np.empty(capacity, dtype=object)
        self.streams[:self.size] = [v[1] for v in values]
        self.alive = np.zeros(capacity, dtype=bool)
        self.alive[:self.size] = True

    @property
    def live(self) -> int:
        return len(self.where)

    def view(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.size
        return self.ids, self.layers[:n], self.streams[:n], self.matrix[:n], self.alive[:n]

    def put(self, rid: str, layer: str, stream: str, vector: np.ndarray) -> None:
        """The row of ``rid``, appended (an older one marked dead)."""
        old = self.where.pop(rid, None)
        if old is not None:
            self.alive[old] = False
        if self.size == len(self.alive):
            self._resize(len(self.alive) + len(self.alive) // 2)
        i = self.size
        self.matrix[i] = vector
        self.layers[i], self.streams[i], self.alive[i] = layer, stream, True
        self.ids.append(rid)
        self.where[rid] = i
        self.size += 1
        self._compact_if_sparse()

    def remove(self, rid: str) -> bool:
        row = self.where.pop(rid, None)
        if row is None:
            return False
        self.alive[row] = False
        self._compact_if_sparse()
        return True

    def _compact_if_sparse(self) -> None:
        """Dead rows kept to half the live ones at most (each compaction copies the live rows
        once, after at least half as many deletes or rewrites)."""
        if self.size >= 64 and 2 * (self.size - self.live) > self.live:
            self._resize(max(16, self.live + self.live // 4))

    def _resize(self, capacity: int) -> None:
        """New arrays of ``capacity`` rows holding the live rows, in order."""
        keep = np.flatnonzero(self.alive[:self.size])
        matrix = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
        matrix[:len(keep)] = self.matrix[keep]
        layers = np.empty(capacity, dtype=object)
        layers[:len(keep)] = self.layers[keep]
        streams = np.empty(capacity, dtype=object)
        streams[:len(keep)] = self.streams[keep]
        alive = np.zeros(capacity, dtype=bool)
        alive[:len(keep)] = True
        self.ids = [self.ids[i] for i in keep]
        self.where = {rid: i for i, rid in enumerate(self.ids)}
        self.matrix, self.layers, self.streams, self.alive = matrix, layers, streams, alive
        self.size = len(keep)


Loader = Callable[[str, str], Iterable[tuple[str, str, str, np.ndarray]]]


class _Loading:
    """A user being read from the table, outside the lock: the writes that land meanwhile are
    kept here and replayed over the rows read, so the view misses none of them."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.writes: list[tuple[str, tuple[str, str, np.ndarray] | None]] = []  # id, row | None
        self.cancelled = False  # cleared meanwhile: what was read may be gone


class UserVectors:
    """Exact per-user search over vectors held in memory (see the module docstring).

    A user's rows are read from the table without holding the lock (~5 ms warm, ~100 ms from
    a cold disk at 5,000 rows): searches of the users already in memory go on meanwhile, and a
    second search of the same user waits for the one read."""

    def __init__(self, dim: int, load: Loader, max_rows: int | None = None):
        self._dim = dim
        self._load = load  # (tenant, user) -> (id, layer, stream_id, vector) rows of the table
        self._max_rows = max_rows_from_env() if max_rows is None else max_rows
        self._users: OrderedDict[tuple[str, str], _User] = OrderedDict()
        self._owner: dict[tuple[str, str], tuple[str, str]] = {}  # (tenant, id) -> user
        self._loading: dict[tuple[str, str], _Loading] = {}
        self._rows = 0
        self._lock = threading.Lock()

    @property
    def max_rows(self) -> int:
        return self._max_rows

    @property
    def rows(self) -> int:
        return self._rows

    def search(self, vector: np.ndarray, tenant: str, user_id: str, limit: int,
               stream_id: str | None, layers: list[str] | None,
               ) -> list[tuple[str, str, float]] | None:
        """(id, layer, cosine) of the ``limit`` nearest rows, or None when the user does not
        fit in memory (the caller asks the table)."""
        user = self._get(tenant, user_id)
        if user is None:
            return None
        with self._lock:
            ids, row_layers, streams, matrix, alive = user.view()
            keep = alive.copy()
        if not keep.any() or limit <= 0:
            return []
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        if stream_id is not None:
            keep &= streams == stream_id
        if layers:
            keep &= np.isin(row_layers, layers)
        candidates = np.flatnonzero(keep)
        if len(candidates) > limit:
            top = np.argpartition(-scores[candidates], limit - 1)[:limit]
            candidates = candidates[top]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(ids[i], row_layers[i], float(scores[i])) for i in order]

    def load(self, tenant: str, user_id: str) -> bool:
        """Bring a user's rows into memory ahead of their first question (a starting node's
        warm-up); False when they do not fit."""
        return self._get(tenant, user_id) is not None

    def _get(self, tenant: str, user_id: str) -> _User | None:
        key = (tenant, user_id)
        while True:
            with self._lock:
                user = self._users.get(key)
                if user is not None:
                    self._users.move_to_end(key)
                    return user
                loading = self._loading.get(key)
                if loading is None:
                    loading = self._loading[key] = _Loading()
                    break
            loading.done.wait()  # another search reads this user: use what it read
            with self._lock:
                user = self._users.get(key)
                if user is not None or not loading.cancelled:
                    return user  # None: too large to hold, the table answers
        try:
            rows = {rid: (layer, stream, np.asarray(vec, dtype=np.float32))
                    for rid, layer, stream, vec in self._load(tenant, user_id)}
        except BaseException:
            with self._lock:
                loading.cancelled = True
                del self._loading[key]
            loading.done.set()
            raise
        with self._lock:
            del self._loading[key]
            try:
                if loading.cancelled:
                    return None  # cleared while reading: the table answers this once
                for rid, row in loading.writes:
                    if row is None:
                        rows.pop(rid, None)
                    else:
                        rows[rid] = row
                if len(rows) > self._max_rows:
                    return None
                while self._users and self._rows + len(rows) > self._max_rows:
                    self._drop(next(iter(self._users)))
                user = self._users[key] = _User(self._dim, rows)
                self._rows += len(rows)
                self._owner.update(((tenant, rid), key) for rid in rows)
                return user
            finally:
                loading.done.set()

    def _drop(self, key: tuple[str, str]) -> None:
        user = self._users.pop(key)
        self._rows -= user.live
        for rid in user.where:
            self._owner.pop((key[0], rid), None)

    def upsert(self, rows: Iterable[tuple[str, str, str, str, str, np.ndarray]]) -> None:
        """(tenant, user_id, id, layer, stream_id, vector) rows just written to the table."""
        with self._lock:
            for tenant, user_id, rid, layer, stream, vector in rows:
                self._remove(tenant, rid)
                vector = np.asarray(vector, dtype=np.float32)
                for (loading_tenant, loading_user), loading in self._loading.items():
                    if loading_tenant == tenant:  # moved away from a user being read, or to it
                        loading.writes.append((rid, (layer, stream, vector)
                                               if loading_user == user_id else None))
                user = self._users.get((tenant, user_id))
                if user is None:
                    continue  # loaded from the table when first asked
                user.put(rid, layer, stream, vector)
                self._owner[tenant, rid] = (tenant, user_id)
                self._rows += 1

    def delete(self, keys: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            for tenant, rid in keys:
                self._remove(tenant, rid)
                for (loading_tenant, _), loading in self._loading.items():
                    if loading_tenant == tenant:
                        loading.writes.append((rid, None))

    def _remove(self, tenant: str, rid: str) -> None:
        owner = self._owner.pop((tenant, rid), None)
        user = self._users.get(owner) if owner is not None else None
        if user is not None and user.remove(rid):
            self._rows -= 1

    def clear(self) -> None:
        with self._lock:
            self._users.clear()
            self._owner.clear()
            self._rows = 0
            for loading in self._loading.values():
                loading.cancelled = True
