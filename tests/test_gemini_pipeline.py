"""The pipeline on the Gemini path: real google-genai client, fake Gemini server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import httpx
import pytest
from conftest import ServedNode, free_port, make_settings, wait_until
from fake_gemini import FakeGemini

from assets import ALL_ASSETS, l0_events
from memorose_dagster.ids import stable_id
from memorose_dagster.models.gemini import GeminiConfig, GeminiEmbedder, GeminiOutputError
from memorose_dagster.node.node import Node
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
USAGE = {"promptTokenCount": 200, "candidatesTokenCount": 40, "totalTokenCount": 240}


@pytest.fixture
def gemini_node(tmp_path, monkeypatch):
    import threading

    import uvicorn

    from api import create_app

    with FakeGemini(default_dim=32) as fake:
        for name, value in {"GOOGLE_API_KEY": "test-key", "MEMOROSE_GEMINI_BASE_URL": fake.base_url,
                            "MEMOROSE_GEMINI_EMBED_DIM": "32",
                            "MEMOROSE_GEMINI_RETRY_BASE_DELAY": "0.01"}.items():
            monkeypatch.setenv(name, value)
        node = Node(make_settings(tmp_path / "g"), embedder=GeminiEmbedder(GeminiConfig.from_env()))
        node.wait_ready()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(node=node), host="127.0.0.1",
                                               port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, what="uvicorn")
        yield ServedNode(node, f"http://127.0.0.1:{port}"), fake
        server.should_exit = True
        thread.join(timeout=10)
        node.close()


def ingest(url, contents):
    events = [{"user_id": "ana", "stream_id": "chat", "content": c} for c in contents]
    return httpx.post(url + "/api/v1/events/batch", json={"events": events}).json()["event_ids"]


def resources(url):
    return {"cluster": ClusterResource(urls=url), "model": ModelResource(provider="gemini")}


def fact(value, source, text):
    return {"subject": "Ana", "attribute": "city", "value": value, "time": None,
            "confidence": 0.9, "source_event_ids": [source], "text": text}


def test_gemini_facts_become_memories_and_updates_supersede(gemini_node):
    served, fake = gemini_node
    ids = ingest(served.url, ["I live in Porto", "Big news: I moved to Lisbon!"])
    dg.materialize([l0_events], resources=resources(served.url), partition_key=TODAY)
    porto_id = stable_id("l1", ids[0], "ana", "city")
    fake.reply_json({"facts": [fact("Porto", ids[0], "Ana lives in Porto."),
                               fact("Lisbon", ids[1], "Ana moved to Lisbon.")]}, USAGE)
    fake.reply_json({"decisions": [{"action": "UPDATE", "memory_id": porto_id,
                                    "reason": "moved"}]}, USAGE)
    result = dg.materialize(ALL_ASSETS[1:], resources=resources(served.url),
                            partition_key=TODAY, selection=None)
    assert result.success
    memories = {m["content"]: m for m in served.node.store.derived_for_user("l1", "default",
                                                                            "ana")}
    assert memories["Ana lives in Porto."]["superseded_by"] == \
        memories["Ana moved to Lisbon."]["id"]
    assert memories["Ana moved to Lisbon."]["derivation"] == "gemini:gemini-2.5-flash"
    meta = result.asset_materializations_for_node("l1_memories")[0].metadata
    assert meta["gemini_total_tokens"].value == 480 and meta["gemini_calls"].value == 2
    assert meta["gemini_cost_usd"].value > 0
    generate = [r for r in fake.requests if r.path.endswith(":generateContent")]
    assert len(generate) == 2 and all(r.headers.get("x-goog-api-key") == "test-key"
                                      for r in fake.requests)
    found = httpx.post(served.url + "/api/v1/retrieve", json={
        "user_id": "ana", "query": "Lisbon", "layers": ["L1"]}).json()["results"]
    assert found[0]["content"] == "Ana moved to Lisbon."
    assert found[0]["provenance"][0]["event_id"] == ids[1]


def test_unparseable_model_output_fails_the_run_loudly(gemini_node):
    served, fake = gemini_node
    ingest(served.url, ["I adopted a cat"])
    dg.materialize([l0_events], resources=resources(served.url), partition_key=TODAY)
    before = served.node.store.applied_index
    fake.reply_text("Sure! Here are the facts: the user adopted a cat.")
    with pytest.raises(GeminiOutputError, match="gemini-2.5-flash"):
        dg.materialize(ALL_ASSETS[1:2], resources=resources(served.url), partition_key=TODAY)
    assert served.node.store.applied_index == before
    assert served.node.store.derived_for_user("l1", "default", "ana") == []
