"""Forgetting on real components: deletes with cascade and forget by query, through the Raft log
into RocksDB, Tantivy and LanceDB, with a real Dagster run. Decay and access: test_decay.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg
import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient
from test_pipeline import FACTS as PIPELINE_FACTS

from api import create_app
from assets import ALL_ASSETS
from memorose_dagster.log import keys as store_keys
from memorose_dagster.memory import forget
from memorose_dagster.memory.forget import cascade
from memorose_dagster.node.forgetter import Forgetter
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import vector_from_bytes

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
NOW = 1_800_000_000.0
FACTS = [*PIPELINE_FACTS, "Lisbon trams are always crowded in the summer"]
# Insights need a topic in 3 to 5% of a user's memories: with ~100 memories, "lisbon" (4) and
# "maria" (3) both qualify, so forgetting one memory updates one insight and retires the other.
FILLER = [f"filler fact number {i} recorded" for i in range(100)]


def ingest(url, contents=FACTS, user="user_1", timestamp=None):
    events = [{"user_id": user, "stream_id": "chat", "content": c, "metadata": {"turn": i},
               **({"timestamp": timestamp} if timestamp else {})}
              for i, c in enumerate(contents)]
    response = httpx.post(url + "/api/v1/events/batch", json={"events": events})
    assert response.status_code == 201, response.text
    return response.json()["event_ids"]


def derive(url):
    """Materialize the memory pipeline (L0 vectors, L1, graph, L2) for today's events."""
    memory_assets = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
    result = dg.materialize(memory_assets, partition_key=TODAY, resources={
        "cluster": ClusterResource(urls=url), "model": ModelResource()})
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())


def records(node, kind, user="user_1"):
    return {r["id"]: r for r in node.store.derived_for_user(kind, "default", user)}


def memory_of(node, event_id, user="user_1"):
    """The memory of an event: the first whose sources start with it."""
    (memory,) = [m for m in records(node, "l1", user).values()
                 if m["source_event_ids"][0] == event_id]
    return memory


def retrieved_ids(node, query, layers=None, user="user_1"):
    return {r["id"] for r in node.retrieve("default", user, query, top_k=50, layers=layers)}


@pytest.fixture
def derived(served_node):
    """A user with FACTS ingested and the pipeline run: (node, event ids, API client)."""
    ids = ingest(served_node.url, FACTS + FILLER)
    derive(served_node.url)
    with TestClient(create_app(node=served_node.node)) as client:
        yield served_node.node, ids, client


def test_delete_memory_cascades_to_insights_graph_and_indexes(derived):
    node, ids, client = derived
    memory = memory_of(node, ids[0])  # "I moved to Lisbon with Maria last spring"
    holding = [i for i in records(node, "l2").values() if memory["id"] in i["member_ids"]]
    assert sorted(len(i["member_ids"]) for i in holding) == [3, 4]  # maria, lisbon
    thin, broad = sorted(holding, key=lambda i: len(i["member_ids"]))
    assert memory["id"] in retrieved_ids(node, "moved to Lisbon with Maria", ["L1"])
    shown = client.get(f"/api/v1/memories/{memory['id']}").json()
    assert shown["layer"] == "L1" and shown["provenance"][0]["metadata"] == {"turn": 0}

    response = client.delete(f"/api/v1/memories/{memory['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["forgotten"] == [{"id": memory["id"], "kind": "l1"}]
    assert {"id": thin["id"], "kind": "l2"} in body["cascaded"]
    assert {"id": broad["id"], "kind": "l2"} in body["updated"]

    assert client.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    gone = {memory["id"], thin["id"]}
    assert not gone & retrieved_ids(node, "moved to Lisbon with Maria")
    assert not gone & (retrieved_ids(node, "moved to Lisbon with Maria", ["L1"])
                       | retrieved_ids(node, "Maria Lisbon", ["L2"]))
    assert ids[0] in retrieved_ids(node, "moved to Lisbon with Maria", ["L0"])  # L0 stays
    insights = records(node, "l2")
    assert thin["id"] not in insights
    assert memory["id"] not in insights[broad["id"]]["member_ids"]
    assert len(insights[broad["id"]]["member_ids"]) == 3
    assert "I moved to Lisbon" in broad["content"]
    assert "I moved to Lisbon" not in insights[broad["id"]]["content"]
    assert "I moved to Lisbon" in broad["context"]
    assert "I moved to Lisbon" not in insights[broad["id"]]["context"]
    assert all(memory["id"] not in (r["source"], r["target"])
               for r in records(node, "relation").values())
    assert all(memory["id"] not in e["memory_ids"] for e in records(node, "entity").values())
    assert client.delete(f"/api/v1/memories/{memory['id']}").status_code == 404


def test_delete_event_removes_the_memory_derived_only_from_it(derived):
    node, ids, client = derived
    memory = memory_of(node, ids[5])  # "Maria started a new job at Google"
    google = [e for e in records(node, "entity").values() if e["name"] == "Google"]
    assert google and any("Google" in m.get("context", "") for m in records(node, "l1").values())

    response = client.delete(f"/api/v1/events/{ids[5]}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["forgotten"] == [{"id": ids[5], "kind": "event"}]
    assert {"id": memory["id"], "kind": "l1"} in body["cascaded"]

    assert client.get(f"/api/v1/events/{ids[5]}").status_code == 404
    assert memory["id"] not in records(node, "l1")
    assert not {ids[5], memory["id"]} & retrieved_ids(node, "Maria new job at Google")
    assert google[0]["id"] not in records(node, "entity")  # no memory names Google any more
    assert all(ids[5] not in r["source_event_ids"] for r in records(node, "relation").values())
    # neighbours quoted the event as context: scrubbed, so it is not matched through them
    assert all("Google" not in m.get("context", "") for m in records(node, "l1").values())
    assert client.delete(f"/api/v1/events/{ids[5]}").status_code == 404


def test_forgotten_memory_is_not_re_derived_by_a_backfill(served_node, derived):
    node, ids, client = derived
    memory = memory_of(node, ids[2])
    assert client.delete(f"/api/v1/memories/{memory['id']}").status_code == 200
    derive(served_node.url)  # a whole-day partition run re-derives every event of the day
    assert memory["id"] not in records(node, "l1")
    assert client.get(f"/api/v1/memories/{memory['id']}").status_code == 404
    assert memory["id"] not in retrieved_ids(node, "adopted a dog called Biscuit", ["L1"])
    assert all(memory["id"] not in i["member_ids"] for i in records(node, "l2").values())


def test_forgetting_a_reply_cuts_its_quote_from_the_turn_it_answered(served_node):
    node, url = served_node.node, served_node.url
    ids = ingest(url, ["Alice: We adopted a dog called Biscuit last week",
                       "Bob: Biscuit is a lovely name for a beagle puppy"], user="user_2")
    derive(url)
    turn = memory_of(node, ids[0], "user_2")
    assert turn["source_event_ids"] == ids and "lovely" in turn["content"]
    with TestClient(create_app(node=node)) as client:
        assert client.delete(f"/api/v1/events/{ids[1]}").status_code == 200
        shown = client.get(f"/api/v1/memories/{turn['id']}").json()
    assert shown["content"].startswith("Alice: We adopted a dog called Biscuit")
    assert "lovely" not in shown["content"] and [p["event_id"] for p in shown["provenance"]] == [
        ids[0]]
    found = node.indexer.fulltext.search("lovely beagle", "default", "user_2", 10, None, None)
    assert turn["id"] not in {hit.id for hit in found}  # neither in its text nor its context
    stored = vector_from_bytes(node.store.get(store_keys.vector("default", turn["id"]))["values"])
    fresh = node.embedder.embed([shown["content"]])[0]
    assert float(np.dot(stored, fresh)) > 0.99  # re-embedded without the reply


def test_list_memories_pages_through_a_users_memories(derived):
    node, _, client = derived
    seen, cursor = [], ""
    while True:
        page = client.get("/api/v1/users/user_1/memories",
                          params={"layer": "L1", "limit": 40, "cursor": cursor}).json()
        seen += [m["id"] for m in page["memories"]]
        assert all(m["layer"] == "L1" and m["provenance"] for m in page["memories"])
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(records(node, "l1")) and len(seen) > 80
    insights = client.get("/api/v1/users/user_1/memories", params={"layer": "L2"}).json()
    assert {m["id"] for m in insights["memories"]} == set(records(node, "l2"))
    assert client.get("/api/v1/users/nobody/memories").status_code == 404
    assert client.get("/api/v1/users/user_1/memories", params={"layer": "L0"}).status_code == 400


def test_cascade_unit():
    base = {"tenant": "t", "user_id": "u"}
    events = [{"kind": "event", "event_id": f"e{i}", "content": f"fact {i}", **base}
              for i in range(4)]
    l1 = [{"kind": "l1", "id": "m0", "content": "fact 0", "source_event_ids": ["e0"], **base},
          {"kind": "l1", "id": "m1", "content": "fact 1 / fact 0", "source_event_ids": ["e1", "e0"],
           **base},
          {"kind": "l1", "id": "m2", "content": "fact 2", "source_event_ids": ["e2"],
           "context": "fact 0 fact 3", **base},
          {"kind": "l1", "id": "m3", "content": "fact 3", "source_event_ids": ["e3"], **base}]
    plan = cascade(events[:1], {"l1": l1})
    assert plan.gone("event") == {"e0"} and plan.gone("l1") == {"m0"}
    updates = {u["id"]: u for u in plan.updates}
    assert updates["m1"]["source_event_ids"] == ["e1"] and updates["m1"]["content"] == "fact 1"
    assert updates["m2"]["context"] == "" and "m3" not in updates
    assert [r["id"] for r in plan.to_embed()] == ["m1"]  # m2's text is unchanged
    assert plan.tombstones[0]["reason"] == forget.REASON_FORGOTTEN
    assert plan.tombstones[1]["reason"] == f"cascade: {forget.REASON_FORGOTTEN}"


def test_forget_by_query_previews_without_change_then_forgets_exactly_the_confirmed(derived):
    node, _, client = derived
    before_index, before_digest = node.store.applied_index, node.store.digest()
    response = client.post("/api/v1/forget", json={"user_id": "user_1",
                                                   "query": "dog Biscuit", "top_k": 4})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert len(preview["candidates"]) == 4 and preview["expires_at"] > time.time()
    assert node.store.applied_index == before_index and node.store.digest() == before_digest

    chosen, others = preview["candidates"][:2], preview["candidates"][2:]
    response = client.post("/api/v1/forget/confirm",
                           json={"token": preview["token"], "ids": [c["id"] for c in chosen]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(f["id"] for f in body["forgotten"]) == sorted(c["id"] for c in chosen)
    assert all(node.get_record("default", c["layer"], c["id"]) is None for c in chosen)
    assert not {c["id"] for c in chosen} & retrieved_ids(node, "dog Biscuit")
    cascaded = {c["id"] for c in body["cascaded"]}
    assert all(node.get_record("default", c["layer"], c["id"]) is not None
               for c in others if c["id"] not in cascaded)


def test_bad_or_expired_token_or_foreign_ids_are_refused(derived):
    node, ids, client = derived
    preview = client.post("/api/v1/forget", json={"user_id": "user_1",
                                                  "query": "Lisbon", "top_k": 2}).json()
    token, first = preview["token"], preview["candidates"][0]["id"]
    body, mac = token.split(".")
    tampered = f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}"
    expired = Forgetter(node, token_ttl=-1).preview("default", "user_1", "Lisbon", 2)["token"]
    before = node.store.applied_index
    for bad_token, bad_ids, match in [
        (tampered, [first], "invalid"), ("garbage", [first], "malformed"),
        (expired, [first], "expired"), (token, [first, "not-a-candidate"], "not among")]:
        response = client.post("/api/v1/forget/confirm", json={"token": bad_token,
                                                               "ids": bad_ids})
        assert response.status_code == 400, response.text
        assert match in response.json()["error"]["message"]
    assert node.store.applied_index == before
    assert client.post("/api/v1/forget/confirm", json={"token": token, "ids": [first],
                                                       "extra": 1}).status_code == 400
