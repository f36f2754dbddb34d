"""The collector in a process that serves a node (api/collector.py): what its warm-up decodes
and what survives a full collection are frozen while a node is served, and only then."""

from __future__ import annotations

import gc
import threading

from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.ids import new_id
from memorose_dagster.log.store import WARM_RECORDS, Store
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Memory
from tests.conftest import make_settings, wait_until


def collectable(objects: list[object]) -> list[bool]:
    """Whether a collection walks each of ``objects`` (the frozen ones are not listed)."""
    walked = {id(obj) for obj in gc.get_objects()}
    return [id(obj) in walked for obj in objects]


def test_a_served_node_freezes_what_survives_a_full_collection(tmp_path):
    # No warm-up: it would freeze everything every 0.25 s while it runs (test_store_cache.py).
    with TestClient(create_app(make_settings(tmp_path / "a", warm_store=False))) as client:
        assert client.get("/health").status_code == 200
        kept = [["a long-lived record"]]
        assert gc.is_tracked(kept) and collectable([kept]) == [True]
        gc.collect(1)  # a younger generation's collection freezes nothing
        assert collectable([kept]) == [True]
        gc.collect()
        assert collectable([kept]) == [False]
    after = [["made after the node stopped"]]
    gc.collect()
    assert collectable([after]) == [True]


def test_an_app_embedding_a_node_leaves_the_collector_alone(tmp_path, embedder):
    node = Node(make_settings(tmp_path / "b", warm_store=False), embedder=embedder)
    try:
        with TestClient(create_app(node=node)) as client:
            assert client.get("/health").status_code == 200
            kept = [["the embedding app's own"]]
            gc.collect()
            assert collectable([kept]) == [True]
    finally:
        node.close()


def test_a_served_node_puts_what_its_warm_up_decoded_out_of_the_collectors_reach(
        tmp_path, embedder, monkeypatch):
    home = tmp_path / "n"
    node = Node(make_settings(home, commit_timeout=5.0), embedder=embedder)
    try:
        node.wait_ready()
        events = [Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                        content=f"fact number {i}", timestamp=1.0) for i in range(20)]
        node.ingest(events)
        node.submit([Memory(id=f"l1_{i}", tenant="default", user_id="u", stream_id="s",
                            content=f"memory {i}", source_event_ids=[e.event_id]).to_dict()
                     for i, e in enumerate(events)])
    finally:
        node.close()
    gate, held, release, warm = threading.Event(), threading.Event(), threading.Event(), Store.warm

    def gated(store, prefixes, *args, **kwargs):  # decodes after the start's own freeze
        assert gate.wait(10)
        warmth = warm(store, prefixes, *args, **kwargs)
        if prefixes == WARM_RECORDS:  # then waits, the memories decoded
            held.set()
            assert release.wait(10)
        return warmth

    def decoded_and_frozen(node) -> bool:
        cached = [record for record, _ in node.store.record_cache._entries.values()  # noqa: SLF001
                  if isinstance(record, dict) and record.get("source_event_ids")]
        assert all(gc.is_tracked(record) for record in cached)
        return len(cached) == 20 and not any(collectable(cached))

    monkeypatch.setattr(Store, "warm", gated)
    with TestClient(create_app(make_settings(home, commit_timeout=5.0))) as client:
        served = client.app.state.node
        assert client.get("/health").json()["caches"] == "warming"
        gate.set()
        assert held.wait(10)
        # Frozen as the warm-up goes, not only at its end.
        wait_until(lambda: decoded_and_frozen(served), timeout=5, what="frozen while warming")
        assert served.warmer.is_alive() and client.get("/health").json()["caches"] == "warming"
        release.set()
        wait_until(lambda: client.get("/health").json()["caches"] == "warm", what="warm")
        assert decoded_and_frozen(served)
