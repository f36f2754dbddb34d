"""The collector in a process that serves a node (api/collector.py): what survives a full
collection is frozen while a node is served, and only then."""

from __future__ import annotations

import gc

from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.node.node import Node
from tests.conftest import make_settings


def collectable(obj: object) -> bool:
    """Whether a collection walks ``obj`` (the frozen ones are not listed)."""
    return any(o is obj for o in gc.get_objects())


def test_a_served_node_freezes_what_survives_a_full_collection(tmp_path):
    # No warm-up: it would freeze everything every 0.25 s while it runs (test_store_cache.py).
    with TestClient(create_app(make_settings(tmp_path / "a", warm_store=False))) as client:
        assert client.get("/health").status_code == 200
        kept = [["a long-lived record"]]
        assert gc.is_tracked(kept) and collectable(kept)
        gc.collect(1)  # a younger generation's collection freezes nothing
        assert collectable(kept)
        gc.collect()
        assert not collectable(kept)
    after = [["made after the node stopped"]]
    gc.collect()
    assert collectable(after)


def test_an_app_embedding_a_node_leaves_the_collector_alone(tmp_path, embedder):
    node = Node(make_settings(tmp_path / "b", warm_store=False), embedder=embedder)
    try:
        with TestClient(create_app(node=node)) as client:
            assert client.get("/health").status_code == 200
            kept = [["the embedding app's own"]]
            gc.collect()
            assert collectable(kept)
    finally:
        node.close()
