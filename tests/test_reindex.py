"""`memorose reindex` rebuilds Tantivy and LanceDB from RocksDB alone."""

from __future__ import annotations

import shutil

import numpy as np
from conftest import make_settings

from memorose_dagster.cli import main
from memorose_dagster.ids import new_id
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Tombstone, Vector, vector_to_bytes


def test_reindex_rebuilds_both_indexes_from_rocksdb(tmp_path, embedder, capsys):
    settings = make_settings(tmp_path / "n")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    events = [Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                    content=text, timestamp=1.0)
              for text in ("kayaking on the river", "baking sourdough bread", "forgotten fact")]
    node.ingest(events)
    vectors = embedder.embed([e.content for e in events])
    node.submit([Vector(tenant="default", record_id=e.event_id, layer="L0", model=embedder.name,
                        values=vector_to_bytes(v)).to_dict()
                 for e, v in zip(events, vectors, strict=True)])
    node.submit([Tombstone(tenant="default", target_kind="event",
                           target_id=events[2].event_id).to_dict()])
    node.close()
    shutil.rmtree(settings.home / "tantivy")
    shutil.rmtree(settings.home / "lancedb")

    assert main(["reindex", "--data-dir", str(settings.home)]) == 0
    assert "2 documents in Tantivy, 2 vectors in LanceDB" in capsys.readouterr().out

    again = Node(settings, embedder=embedder)
    again.wait_ready()
    try:
        assert again.indexer.indexed == again.store.applied_index
        hits = again.retrieve("default", "u", "paddling a boat", top_k=3)
        assert hits[0]["content"] == "kayaking on the river"
        assert all(h["content"] != "forgotten fact" for h in hits)
        assert again.indexer.fulltext.search("forgotten", "default", "u", 5) == []
        stored = again.indexer.vectors.search(np.asarray(vectors[0]), "default", "u", 5)
        assert {h.id for h in stored} == {events[0].event_id, events[1].event_id}
    finally:
        again.close()
