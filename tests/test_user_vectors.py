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


def test_a_user_being_read_holds_up_no_other_search_and_misses_no_write(tmp_path):
    """Reading a user's rows from the table happens outside the view's lock: searches of users
    already in memory go on, and the writes that land meanwhile (a new row for the user, one
    of its rows deleted, one moved to another user) are in the view it builds."""
    rng = np.random.default_rng(8)
    index = VectorIndex(tmp_path / "lancedb", DIM, "m")
    index.upsert([VectorRow(f"r{i}", "t", USERS[i % 2], "s1", "L0", v)
                  for i, v in enumerate(unit(rng, 40))])
    query = unit(rng)[0]
    index.search(query, "t", "alice", 5)  # alice in memory; bob is read on his first search
    memory = index._memory  # noqa: SLF001 - the view's reads, held at a gate
    read_rows, entered, gate = memory._load, threading.Event(), threading.Event()  # noqa: SLF001

    def gated_read(tenant: str, user_id: str) -> list:
        rows = list(read_rows(tenant, user_id))
        entered.set()
        assert gate.wait(30)
        return rows

    memory._load = gated_read  # noqa: SLF001
    bob_first: list = []
    reader = threading.Thread(target=lambda: bob_first.extend(index.search(query, "t", "bob",
                                                                           40)))
    reader.start()
    try:
        assert entered.wait(30)
        other = threading.Thread(target=index.search, args=(query, "t", "alice", 5))
        other.start()
        other.join(timeout=10)
        assert not other.is_alive()  # alice's search did not wait for bob's read
        index.upsert([VectorRow("new", "t", "bob", "s1", "L1", unit(rng)[0]),
                      VectorRow("r1", "t", "alice", "s1", "L0", unit(rng)[0])])  # moved
        index.delete([("t", "r3")])
    finally:
        gate.set()
        reader.join(timeout=30)
    assert not reader.is_alive()
    ids = {h.id for h in bob_first}
    assert "new" in ids and not ids & {"r1", "r3"} and len(ids) == 20 - 2 + 1
    same_as_the_table(index, query, 0)


def test_load_user_brings_a_user_in_before_the_first_search(tmp_path):
    rng = np.random.default_rng(9)
    index = VectorIndex(tmp_path / "lancedb", DIM, "m")
    index.upsert([VectorRow(f"r{i}", "t", USERS[i % 3], "s1", "L0", v)
                  for i, v in enumerate(unit(rng, 30))])
    assert index.memory_rows[0] == 0
    assert index.load_user("t", "alice") and index.load_user("t", "bob")
    assert index.memory_rows[0] == 20
    same_as_the_table(index, unit(rng)[0], 0)
