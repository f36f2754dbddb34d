"""The indexes are keyed by (tenant, id): one tenant's write or delete never touches another
tenant's document, and an index built with the old id-only key is rebuilt on start."""

from __future__ import annotations

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from conftest import make_settings, wait_until
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.ids import new_id
from memorose_dagster.index.vectors import VectorIndex, VectorRow
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Vector, vector_to_bytes


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def two_tenants(tmp_path, embedder):
    node = Node(make_settings(tmp_path / "k", api_keys={"ka": "A", "kb": "B"}),
                embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        yield client
    node.close()


def test_a_tenant_reusing_another_tenants_event_id_leaves_its_event_searchable(two_tenants):
    event_id = new_id()
    mine = {"event_id": event_id, "user_id": "u", "stream_id": "s",
            "content": "the orchid greenhouse needs watering"}
    assert two_tenants.post("/api/v1/events", json=mine,
                            headers=as_key("ka")).status_code == 201
    theirs = {**mine, "content": "an unrelated note about invoices"}
    assert two_tenants.post("/api/v1/events", json=theirs,
                            headers=as_key("kb")).status_code == 201

    def found(key: str, query: str) -> list[str]:
        body = {"user_id": "u", "query": query, "layers": ["L0"]}
        response = two_tenants.post("/api/v1/retrieve", json=body, headers=as_key(key))
        assert response.status_code == 200, response.text
        return [r["content"] for r in response.json()["results"]]

    assert found("ka", "orchid greenhouse") == [mine["content"]]
    assert found("kb", "invoices") == [theirs["content"]]
    gone = two_tenants.delete(f"/api/v1/events/{event_id}", headers=as_key("kb"))
    assert gone.status_code in (200, 204), gone.text
    assert found("ka", "orchid greenhouse") == [mine["content"]]  # B's delete is B's only


def test_vector_rows_of_two_tenants_with_one_id_are_two_rows(tmp_path):
    index = VectorIndex(tmp_path / "lancedb", 4, "m")
    one = np.asarray([1, 0, 0, 0], dtype=np.float32)
    index.upsert([VectorRow("same", "A", "u", "s", "L0", one),
                  VectorRow("same", "B", "u", "s", "L0", one)])
    assert index.count() == 2
    index.delete([("B", "same")])
    assert [h.id for h in index.search(one, "A", "u", 5)] == ["same"]
    assert index.search(one, "B", "u", 5) == []


def test_indexes_of_the_old_key_layout_are_rebuilt_on_start(tmp_path, embedder):
    settings = make_settings(tmp_path / "n")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    events = [Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                    content=text, timestamp=1.0)
              for text in ("kayaking on the river", "baking sourdough bread")]
    node.ingest(events)
    vectors = embedder.embed([e.content for e in events])
    node.submit([Vector(tenant="default", record_id=e.event_id, layer="L0",
                        model=embedder.name, values=vector_to_bytes(v)).to_dict()
                 for e, v in zip(events, vectors, strict=True)])
    table = next(iter(lancedb.connect(str(settings.home / "lancedb")).table_names()))
    node.close()

    # What an older release left: Tantivy at schema 2, a LanceDB table keyed by id alone.
    (settings.home / "tantivy" / "SCHEMA_VERSION").write_text("2")
    db = lancedb.connect(str(settings.home / "lancedb"))
    db.drop_table(table)
    old = pa.schema([pa.field("id", pa.string()), pa.field("tenant", pa.string()),
                     pa.field("user_id", pa.string()), pa.field("stream_id", pa.string()),
                     pa.field("layer", pa.string()),
                     pa.field("vector", pa.list_(pa.float32(), embedder.dim))])
    db.create_table(table, data=pa.Table.from_pylist(
        [{"id": "stale", "tenant": "default", "user_id": "u", "stream_id": "s", "layer": "L0",
          "vector": np.asarray(vectors[0], dtype=np.float32)}], schema=old))

    again = Node(settings, embedder=embedder)
    again.wait_ready()
    try:
        wait_until(lambda: again.indexer.indexed >= again.store.applied_index,
                   what="the rebuild")
        assert again.indexer.vectors.count() == 2  # rebuilt from RocksDB: no stale row
        hits = again.retrieve("default", "u", "paddling a boat", top_k=2)
        assert hits[0]["content"] == "kayaking on the river"
        assert again.indexer.fulltext.num_docs() == 2
    finally:
        again.close()
