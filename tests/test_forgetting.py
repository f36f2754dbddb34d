"""Forgetting on real components: deletes with cascade, forget by query, decay and access
reinforcement, through the Raft log into RocksDB, Tantivy and LanceDB, with a real Dagster run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import dagster as dg
import httpx
import numpy as np
import pytest
from conftest import wait_until
from rocksdict import Options, Rdict, WriteBatch
from starlette.applications import Starlette
from starlette.testclient import TestClient
from test_pipeline import FACTS as PIPELINE_FACTS

from api import create_app, memory_routes
from assets import ALL_ASSETS
from assets.memory_decay import memory_decay
from memorose_dagster import keys
from memorose_dagster import records as record_types
from memorose_dagster.access import Access, AccessLog, access_key, apply_access
from memorose_dagster.forgetting import Forgetter
from memorose_dagster.index.embedding import vector_from_bytes
from memorose_dagster.log import keys as store_keys
from memorose_dagster.memory import forget
from memorose_dagster.memory.forget import DAY, cascade, select_prunable, strength, user_clock
from memorose_dagster.node import Node
from memorose_dagster.records import RECORD_TYPES, pack, unpack
from memorose_dagster.resources import ClusterResource, ModelResource

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
NOW = 1_800_000_000.0
FACTS = [*PIPELINE_FACTS, "Lisbon trams are always crowded in the summer"]
# Insights need a topic in 3 to 5% of a user's memories: with ~100 memories, "lisbon" (4) and
# "maria" (3) both qualify, so forgetting one memory updates one insight and retires the other.
FILLER = [f"filler fact number {i} recorded" for i in range(100)]
needs_access_kind = pytest.mark.skipif(
    "access" not in RECORD_TYPES,
    reason="needs the access record wired in (records.RECORD_TYPES, Store.apply, admin records)")
needs_final_tombstones = pytest.mark.skipif(
    not hasattr(record_types, "FINAL_REASONS"),
    reason="needs records.FINAL_REASONS and the Store.apply guard")


def app_for(node: Node) -> Starlette:
    """The node's app with the memory routes (skipping any app.py already registers)."""
    app = create_app(node=node)
    have = {(r.path, frozenset(r.methods or ())) for r in app.router.routes}
    app.router.routes.extend(r for r in memory_routes.ROUTES
                             if (r.path, frozenset(r.methods or ())) not in have)
    return app


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
    with TestClient(app_for(served_node.node)) as client:
        yield served_node.node, ids, client


# -- deletes with cascade ----------------------------------------------------------------------

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


@needs_final_tombstones
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
    with TestClient(app_for(node)) as client:
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


# -- forget by query ---------------------------------------------------------------------------

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


# -- decay -------------------------------------------------------------------------------------

def test_half_life_and_reinforcement():
    memory = {"id": "m", "importance": 0.8, "created_at": NOW - 60 * DAY}
    assert strength(memory, NOW, half_life_days=30) == pytest.approx(0.8 * 0.25)
    assert strength(memory, NOW - 30 * DAY, half_life_days=30) == pytest.approx(0.8 * 0.5)
    accessed = strength(memory, NOW, 30, access_count=3, last_access=NOW - DAY)
    assert accessed > strength(memory, NOW, 30, access_count=3) > strength(memory, NOW, 30)
    assert strength({"importance": 0.4}, NOW) == 0.4  # no known age: no decay


def test_select_prunable_spares_pinned_protected_reinforced_and_live_history():
    old = NOW - 200 * DAY
    memories = [
        {"id": "weak", "importance": 0.5, "created_at": old},
        {"id": "pinned", "importance": 0.1, "created_at": old, "pinned": True},
        {"id": "important", "importance": 0.85, "created_at": old},
        {"id": "fresh", "importance": 0.5, "created_at": NOW - DAY},
        {"id": "used", "importance": 0.5, "created_at": old},
        {"id": "history", "importance": 0.5, "created_at": old, "superseded_by": "fresh"},
        {"id": "old_history", "importance": 0.5, "created_at": old, "superseded_by": "weak"},
    ]
    access = {"used": {"count": 2, "last_access": NOW - DAY}}
    pruned = {m["id"] for m in select_prunable(memories, NOW, floor=0.05, half_life_days=30,
                                               access=access)}
    assert pruned == {"weak", "old_history"}


def test_decay_ages_on_the_users_clock():
    old = NOW - 200 * DAY
    away = [{"id": "a", "importance": 0.5, "created_at": old},
            {"id": "b", "importance": 0.5, "created_at": old + 10 * DAY}]
    assert user_clock(away, {}, NOW) == old + 10 * DAY  # away since b: nothing aged since
    assert not select_prunable(away, user_clock(away, {}, NOW), half_life_days=30)
    back = {"b": {"count": 1, "last_access": NOW - DAY}}  # back, and retrieving again
    assert user_clock(away, back, NOW) == NOW - DAY
    assert [m["id"] for m in select_prunable(away, user_clock(away, back, NOW),
                                             half_life_days=30, access=back)] == ["a"]
    future = [{"id": "c", "importance": 0.5, "created_at": NOW + DAY}]
    assert user_clock(future, {}, NOW) == NOW and user_clock([], {}, NOW) == NOW


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


@needs_access_kind
def test_decay_asset_prunes_the_faded_and_keeps_pinned_and_important(served_node):
    node, url = served_node.node, served_node.url
    old = time.time() - 200 * DAY
    ids = ingest(url, ["Maria and I adopted a dog called Biscuit in Lisbon",
                       "We hike near Lisbon with Biscuit every Sunday",
                       "Maria started a new job at Google"], timestamp=old)
    ingest(url, ["Biscuit learned to swim in the Lisbon river today"])
    derive(url)
    weak, pinned, important = (memory_of(node, i) for i in ids)
    node.submit([{**pinned, "pinned": True}, {**important, "importance": 0.9}])

    result = dg.materialize([memory_decay], resources={
        "cluster": ClusterResource(urls=url), "model": ModelResource()},
        run_config={"ops": {"memory_decay": {"config": {"half_life_days": 30.0}}}})
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "memory_decay_spares_protected" and check.passed
    metadata = result.asset_materializations_for_node("memory_decay")[0].metadata
    assert metadata["examined"].value == 4 and metadata["pruned"].value == 1

    left = records(node, "l1")
    assert weak["id"] not in left and {pinned["id"], important["id"]} <= set(left)
    assert weak["id"] not in retrieved_ids(node, "adopted a dog called Biscuit")
    tombstone = node.store.get(store_keys.tombstone("default", "l1", weak["id"]))
    assert tombstone["reason"] == forget.REASON_DECAYED
    assert all(weak["id"] not in (r["source"], r["target"])
               for r in records(node, "relation").values())


# -- access reinforcement ----------------------------------------------------------------------

def test_apply_access_adds_counts_on_real_rocksdb(tmp_path):
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(tmp_path / "db"), options)
    db[store_keys.target_key("t", "l1", "m1")] = pack({"id": "m1"})

    def apply(count, at, rid="m1"):
        batch = WriteBatch(raw_mode=True)
        record = Access(tenant="t", user_id="u", record_id=rid, target_kind="l1", count=count,
                        last_access=at).to_dict()
        out = apply_access(batch, lambda k: unpack(db[k]) if k in db else None, record)
        db.write(batch)
        return out

    apply(3, 10.0)
    apply(2, 5.0)
    assert apply(7, 1.0, rid="forgotten") is None
    stored = unpack(db[access_key("t", "m1")])
    assert stored["count"] == 5 and stored["last_access"] == 10.0
    assert access_key("t", "forgotten") not in db
    db.close()


@needs_access_kind
def test_access_flush_is_one_log_command(derived):
    node, ids, _ = derived
    memory = memory_of(node, ids[2])
    hits = [{"id": memory["id"], "layer": "L1", "user_id": "user_1"},
            {"id": ids[2], "layer": "L0", "user_id": "user_1"}]
    access = AccessLog(node, flush_every=3600, flush_hits=1000)
    access.start()
    try:
        before = node.store.applied_index
        threads = [threading.Thread(target=lambda: [access.record("default", hits)
                                                    for _ in range(250)]) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # 1000 hits from 4 threads reach the threshold: one flush, one log command
        row = wait_until(lambda: node.store.get(access_key("default", memory["id"])),
                         what="access flush")
        assert row["count"] == 1000 and row["user_id"] == "user_1"
        assert node.store.applied_index == before + 1 == row["log_index"]
        assert node.store.get(access_key("default", ids[2])) is None  # L0 is not counted
        access.record("default", hits[:1])
    finally:
        access.stop()  # flushes the rest
    assert node.store.get(access_key("default", memory["id"]))["count"] == 1001


@needs_access_kind
def test_decay_spares_a_recently_retrieved_memory(served_node):
    node, url = served_node.node, served_node.url
    ids = ingest(url, ["Maria and I adopted a dog called Biscuit in Lisbon",
                       "We hike near Lisbon with Biscuit every Sunday"],
                 timestamp=time.time() - 200 * DAY)
    derive(url)
    used, unused = (memory_of(node, i) for i in ids)
    access = AccessLog(node)
    access.record("default", [{"id": used["id"], "layer": "L1", "user_id": "user_1"}] * 2)
    assert access.flush() is not None
    dg.materialize([memory_decay], resources={"cluster": ClusterResource(urls=url),
                                              "model": ModelResource()},
                   run_config={"ops": {"memory_decay": {"config": {"half_life_days": 30.0}}}})
    assert used["id"] in records(node, "l1") and unused["id"] not in records(node, "l1")
