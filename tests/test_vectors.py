"""The LanceDB vector index on its own: per-user scoping, layer filter, exact scans."""

from __future__ import annotations

from memorose_dagster.index.vectors import VectorIndex, VectorRow


def test_search_is_scoped_and_exact_matches_the_index(tmp_path, embedder):
    index = VectorIndex(tmp_path / "lancedb", embedder.dim, embedder.name)
    texts = ["hiking in the alps", "tax forms are due", "mountain trail running",
             "my dog Biscuit", "quarterly budget review"]
    vectors = embedder.embed(texts)
    index.upsert([VectorRow(f"a{i}", "t", "alice", "s", "L0" if i % 2 else "L1", v)
                  for i, v in enumerate(vectors)])
    index.upsert([VectorRow("b0", "t", "bob", "s", "L0", vectors[0])])
    query = embedder.embed(["outdoor activities in the mountains"])[0]
    found = index.search(query, "t", "alice", 5)
    assert [h.id for h in found][:2] in (["a0", "a2"], ["a2", "a0"])
    assert "b0" not in {h.id for h in found}
    assert [h.id for h in index.search(query, "t", "alice", 5, exact=True)] == \
        [h.id for h in found]
    assert {h.layer for h in index.search(query, "t", "alice", 5, layers=["L0"])} == {"L0"}
    assert index.search(query, "other-tenant", "alice", 5) == []


def test_the_in_memory_view_follows_writes_and_matches_an_exact_scan(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)

    def unit(n: int) -> np.ndarray:
        values = rng.normal(size=(n, 8)).astype(np.float32)
        return values / np.linalg.norm(values, axis=1, keepdims=True)

    index = VectorIndex(tmp_path / "lancedb", 8, "m")
    index.upsert([VectorRow(f"r{i}", "t", "alice", f"s{i % 3}", ("L0", "L1", "L2")[i % 3], v)
                  for i, v in enumerate(unit(200))])
    queries = unit(20)

    def same(**filters) -> None:
        for q in queries:
            fast = index.search(q, "t", "alice", 30, **filters)
            exact = index.search(q, "t", "alice", 30, exact=True, **filters)
            assert [h.id for h in fast] == [h.id for h in exact]
            assert np.allclose([h.similarity for h in fast], [h.similarity for h in exact],
                               atol=1e-5)

    same()  # loads alice into memory
    index.upsert([VectorRow(f"r{i}", "t", "alice", "s9", "L1", v)  # rewrites and new rows
                  for i, v in zip(range(150, 260), unit(110), strict=True)])
    index.delete([("t", f"r{i}") for i in range(0, 200, 7)])
    index.upsert([VectorRow("b0", "t", "bob", "s0", "L0", queries[0])])
    same()
    same(layers=["L1"])
    same(stream_id="s9")
    assert "b0" not in {h.id for h in index.search(queries[0], "t", "alice", 30)}
    assert index.search(queries[0], "t", "bob", 30)[0].id == "b0"
    index.clear()
    assert index.search(queries[0], "t", "alice", 30) == []


def test_the_tables_ann_index_finds_what_an_exact_scan_finds(tmp_path, monkeypatch):
    """For users too large for the in-memory view: the table's IVF-FLAT index, built once the
    table is large enough and kept up with new rows, answers a user's nearest rows as a flat
    scan of the user does."""
    import numpy as np
    import pytest

    from memorose_dagster.index import vectors

    monkeypatch.setattr(vectors, "ANN_MIN_ROWS", 600)
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(12, 16)).astype(np.float32)

    def rows(first: int, n: int) -> list[VectorRow]:
        values = centres[rng.integers(0, 12, n)] + rng.normal(scale=0.3, size=(n, 16))
        values = (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)
        return [VectorRow(f"r{first + i}", "t", f"user_{(first + i) % 3}", "s", "L0", v)
                for i, v in enumerate(values)]

    with pytest.raises(ValueError, match="ann: one of"):
        VectorIndex(tmp_path / "other", 16, "m", ann="hnsw")
    index = VectorIndex(tmp_path / "lancedb", 16, "m")
    index.upsert(rows(0, 500))
    index.optimize()
    assert not index.has_ann  # below ANN_MIN_ROWS: flat scans only
    index.upsert(rows(500, 200))
    index.optimize()
    index.upsert(rows(700, 200))  # rows the index does not cover yet: searched flat
    found = []
    for query in rows(10_000, 30):
        user = query.user_id
        ann = [h.id for h in index.search_table(query.vector, "t", user, 10)]
        exact = [h.id for h in index.search_table(query.vector, "t", user, 10, exact=True)]
        assert ann and {int(i[1:]) % 3 for i in ann} == {int(user[-1])}
        found.append(len(set(ann) & set(exact)) / len(exact))
    assert index.has_ann
    assert np.mean(found) >= 0.95
