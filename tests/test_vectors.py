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
