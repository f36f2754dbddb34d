"""The in-memory view of each asked user's vectors (index/user_vectors.py), through the LanceDB
index it views (index/vectors.py): it matches an exact scan of the table through many writes,
rewrites, deletes, moves between users, growth and compaction, and a search beside a writer
only ever sees rows that were written."""

from __future__ import annotations

import threading

import numpy as np

from memorose_dagster.index.vectors import VectorIndex, VectorRow

DIM = 8
LAYERS = ("L0", "L1", "L2")
USERS = ("alice", "bob", "carol")


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    values = rng.normal(size=(n, DIM)).astype(np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def same_as_the_table(index: VectorIndex, query: np.ndarray, round_number: int) -> None:
    for user in USERS:
        for filters in ({}, {"layers": ["L1", "L2"]}, {"stream_id": "s1"}):
            fast = index.search(query, "t", user, 10, **filters)
            exact = index.search_table(query, "t", user, 10, exact=True, **filters)
            assert [h.id for h in fast] == [h.id for h in exact], (round_number, user, filters)
            assert [h.layer for h in fast] == [h.layer for h in exact]
            assert np.allclose([h.similarity for h in fast], [h.similarity for h in exact],
                               atol=1e-5)


def test_the_view_matches_an_exact_scan_through_writes_deletes_and_moves(tmp_path):
    rng = np.random.default_rng(5)
    index = VectorIndex(tmp_path / "lancedb", DIM, "m")
    index.upsert([VectorRow(f"r{i}", "t", USERS[i % 3], f"s{i % 3}", LAYERS[i % 3], v)
                  for i, v in enumerate(unit(rng, 150))])
    same_as_the_table(index, unit(rng)[0], 0)  # every user's rows now in memory
    for round_number in range(1, 61):
        # New rows, rewrites and rows moving to another user; then deletes (ids drawn from a
        # small range, so that most writes meet a row that is there).
        ids = rng.choice(300, size=20, replace=False)
        index.upsert([VectorRow(f"r{i}", "t", USERS[rng.integers(3)], f"s{rng.integers(3)}",
                                LAYERS[rng.integers(3)], v)
                      for i, v in zip(ids[:14], unit(rng, 14), strict=True)])
        index.delete([("t", f"r{i}") for i in ids[14:]])
        same_as_the_table(index, unit(rng)[0], round_number)


def test_a_user_whose_rows_all_went_has_none_and_rows_come_back(tmp_path):
    rng = np.random.default_rng(6)
    index = VectorIndex(tmp_path / "lancedb", DIM, "m")
    vectors = unit(rng, 100)
    index.upsert([VectorRow(f"r{i}", "t", "alice", "s", "L0", v) for i, v in enumerate(vectors)])
    assert len(index.search(vectors[0], "t", "alice", 200)) == 100
    index.delete([("t", f"r{i}") for i in range(100)])
    assert index.search(vectors[0], "t", "alice", 10) == []
    index.upsert([VectorRow("r7", "t", "alice", "s", "L1", vectors[7])])
    (hit,) = index.search(vectors[0], "t", "alice", 10)
    assert (hit.id, hit.layer) == ("r7", "L1")
    assert np.isclose(hit.similarity, float(vectors[7] @ vectors[0]), atol=1e-5)


def test_a_search_beside_a_writer_sees_only_written_rows(tmp_path):
    """Every row's vector is its id's own: a search that read a row half-written, or an id
    beside another id's row, would return a score that is not that id's."""
    rng = np.random.default_rng(7)
    vectors = {f"r{i}": v for i, v in enumerate(unit(rng, 600))}
    index = VectorIndex(tmp_path / "lancedb", DIM, "m")
    index.upsert([VectorRow(rid, "t", "alice", "s", "L0", v)
                  for rid, v in list(vectors.items())[:300]])
    query = unit(rng)[0]
    index.search(query, "t", "alice", 10)  # loads alice into memory
    done = threading.Event()
    wrong: list[tuple[str, float]] = []
    searches = [0]

    def search() -> None:
        while not done.is_set():
            for hit in index.search(query, "t", "alice", 50):
                if abs(hit.similarity - float(vectors[hit.id] @ query)) > 1e-5:
                    wrong.append((hit.id, hit.similarity))
            searches[0] += 1

    reader = threading.Thread(target=search)
    reader.start()
    try:
        ids = list(vectors)
        for _ in range(60):  # appends, rewrites, deletes: growth and compaction
            batch = rng.choice(len(ids), size=12, replace=False)
            index.upsert([VectorRow(ids[i], "t", "alice", "s", "L0", vectors[ids[i]])
                          for i in batch[:8]])
            index.delete([("t", ids[i]) for i in batch[8:]])
    finally:
        done.set()
        reader.join()
    assert searches[0] > 60 and not wrong
