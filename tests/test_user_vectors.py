"""The in-memory view of each asked user's vectors (index/user_vectors.py) against an exact scan
of what was written, through many writes, rewrites, deletes, moves between users, growth and
compaction; and a search beside a writer only ever sees rows that were written."""

from __future__ import annotations

import threading

import numpy as np

from memorose_dagster.index.user_vectors import UserVectors

DIM = 8
LAYERS = ("L0", "L1", "L2")


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    values = rng.normal(size=(n, DIM)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


class Table:
    """What was written: the durable table the view loads users from."""

    def __init__(self):
        self.rows: dict[tuple[str, str], tuple[str, str, str, np.ndarray]] = {}

    def load(self, tenant: str, user_id: str):
        return [(rid, layer, stream, vector)
                for (t, rid), (user, layer, stream, vector) in self.rows.items()
                if t == tenant and user == user_id]

    def exact(self, query, tenant, user_id, limit, stream_id=None, layers=None):
        scored = [(float(vector @ query), rid, layer)
                  for rid, layer, stream, vector in self.load(tenant, user_id)
                  if (stream_id is None or stream == stream_id)
                  and (not layers or layer in layers)]
        scored.sort(key=lambda s: -s[0])
        return scored[:limit]


def test_the_view_matches_an_exact_scan_through_writes_deletes_and_moves():
    rng = np.random.default_rng(5)
    table = Table()
    view = UserVectors(DIM, table.load, max_rows=10_000)
    users = ["alice", "bob", "carol"]
    for step in range(3000):
        action = rng.random()
        rid = f"r{rng.integers(400)}"
        if action < 0.7:  # a new row, a rewrite, or a row moving to another user
            user = users[rng.integers(len(users))]
            row = (user, LAYERS[rng.integers(3)], f"s{rng.integers(3)}", unit(rng)[0])
            table.rows["t", rid] = row
            view.upsert([("t", *row[:1], rid, *row[1:])])
        elif action < 0.9:
            table.rows.pop(("t", rid), None)
            view.delete([("t", rid)])
        if step % 25 == 0:
            query = unit(rng)[0]
            for user in users:
                for filters in ({}, {"layers": ["L1", "L2"]}, {"stream_id": "s1"}):
                    found = view.search(query, "t", user, 10, filters.get("stream_id"),
                                        filters.get("layers"))
                    exact = table.exact(query, "t", user, 10, **filters)
                    assert [rid for rid, _, _ in found] == [rid for _, rid, _ in exact], step
                    assert np.allclose([s for _, _, s in found], [s for s, _, _ in exact],
                                       atol=1e-5)
                    assert [layer for _, layer, _ in found] == [layer for _, _, layer in exact]


def test_a_user_whose_rows_all_went_has_none_and_rows_come_back():
    rng = np.random.default_rng(6)
    table = Table()
    view = UserVectors(DIM, table.load, max_rows=1000)
    vectors = unit(rng, 100)
    for i, vector in enumerate(vectors):
        table.rows["t", f"r{i}"] = ("alice", "L0", "s", vector)
    assert len(view.search(vectors[0], "t", "alice", 200, None, None)) == 100
    view.delete([("t", f"r{i}") for i in range(100)])
    assert view.search(vectors[0], "t", "alice", 10, None, None) == []
    view.upsert([("t", "alice", "r7", "L1", "s", vectors[7])])
    assert view.search(vectors[0], "t", "alice", 10, None, None) == [
        ("r7", "L1", float(vectors[7] @ vectors[0]))]


def test_a_search_beside_a_writer_sees_only_written_rows():
    """Every row's vector is its id's own: a search that read a row half-written, or an id
    beside another id's row, would return a score that is not that id's."""
    rng = np.random.default_rng(7)
    vectors = {f"r{i}": v for i, v in enumerate(unit(rng, 600))}
    table = Table()
    for rid in list(vectors)[:300]:
        table.rows["t", rid] = ("alice", "L0", "s", vectors[rid])
    view = UserVectors(DIM, table.load, max_rows=10_000)
    query = unit(rng)[0]
    view.search(query, "t", "alice", 10, None, None)
    done = threading.Event()
    wrong: list[tuple[str, float]] = []

    def search() -> None:
        while not done.is_set():
            for rid, _, score in view.search(query, "t", "alice", 50, None, None):
                if abs(score - float(vectors[rid] @ query)) > 1e-5:
                    wrong.append((rid, score))

    reader = threading.Thread(target=search)
    reader.start()
    try:
        ids = list(vectors)
        for _ in range(4000):  # appends, rewrites, deletes: growth and compaction
            rid = ids[rng.integers(len(ids))]
            if rng.random() < 0.6:
                view.upsert([("t", "alice", rid, "L0", "s", vectors[rid])])
            else:
                view.delete([("t", rid)])
    finally:
        done.set()
        reader.join()
    assert not wrong
