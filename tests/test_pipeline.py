"""The Dagster pipeline on real components: a node over HTTP, real Dagster instances."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import httpx
import pydantic
import pytest

from assets import ALL_ASSETS
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.definitions import defs
from memorose_dagster.pipeline.partitions import range_run_config
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import Memory
from sensors import log_sensor, rederive_sensor

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
MEMORY_ASSETS = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
FACTS = [
    "I moved to Lisbon with Maria last spring",
    "ok",
    "Maria and I adopted a dog called Biscuit in Lisbon",
    "lol",
    "We hike near Lisbon with Biscuit every Sunday",
    "Maria started a new job at Google",
]


def ingest(url, user="user_1", contents=FACTS, stream="chat"):
    events = [{"user_id": user, "stream_id": stream, "content": c, "metadata": {"turn": i}}
              for i, c in enumerate(contents)]
    body = httpx.post(url + "/api/v1/events/batch", json={"events": events}).json()
    return body["event_ids"]


def resources(url):
    return {"cluster": ClusterResource(urls=url), "model": ModelResource()}


def derived(node, kind, user="user_1"):
    return {r["id"]: {k: v for k, v in r.items() if k != "log_index"}
            for r in node.store.derived_for_user(kind, "default", user)}


def materialize(url, run_config=None, partition_key=TODAY, instance=None):
    result = dg.materialize(MEMORY_ASSETS, resources=resources(url), partition_key=partition_key,
                            run_config=run_config, instance=instance)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(c.passed for c in checks), checks
    return result


def test_definitions_load_with_lineage():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert graph.get(keys.L1_MEMORIES).parent_keys == {keys.L0_EVENTS}
    assert graph.get(keys.MEMORY_GRAPH).parent_keys == {keys.L1_MEMORIES}
    assert graph.get(keys.L2_INSIGHTS).parent_keys == {keys.MEMORY_GRAPH}
    assert all(graph.get(k).group_name == "memory" for k in keys.MEMORY_ASSETS)
    assert defs.resolve_job_def("memory_job") and defs.resolve_sensor_def("log_sensor")


def test_assets_materialize_with_passing_checks(served_node):
    node, url = served_node.node, served_node.url
    ids = ingest(url)
    result = materialize(url)
    memories = derived(node, "l1")
    assert len(memories) == 4  # "ok" and "lol" are noise
    assert {e for m in memories.values() for e in m["source_event_ids"]} == {
        ids[0], ids[2], ids[4], ids[5]}
    entities = {e["name"] for e in derived(node, "entity").values()}
    assert {"Lisbon", "Maria", "Biscuit", "Google"} <= entities
    insights = derived(node, "l2")
    lisbon = [i for i in insights.values() if i["topic"] == "lisbon"]
    assert len(lisbon) == 1 and len(lisbon[0]["member_ids"]) == 3
    assert node.indexer.vectors.count() == len(ids) + len(memories) + len(insights)
    l1_meta = result.asset_materializations_for_node("l1_memories")[0].metadata
    assert l1_meta["records_in"].value == 6 and l1_meta["records_out"].value == 4


def test_vectors_find_meaning_without_shared_words(served_node):
    url = served_node.url
    ingest(url, contents=["User loves hiking in the mountains", "The quarterly tax forms are due"])
    materialize(url)
    found = httpx.post(url + "/api/v1/retrieve", json={
        "user_id": "user_1", "query": "outdoor activities", "top_k": 2, "layers": ["L0"]})
    assert found.json()["results"][0]["content"] == "User loves hiking in the mountains"


def test_rerun_is_idempotent(served_node):
    node, url = served_node.node, served_node.url
    ingest(url)
    materialize(url)
    first = {kind: derived(node, kind) for kind in ("l1", "l2", "entity", "relation")}
    vectors = node.indexer.vectors.count()
    materialize(url)
    assert {kind: derived(node, kind) for kind in first} == first
    assert node.indexer.vectors.count() == vectors


def test_sensor_requests_exactly_the_new_ranges(served_node):
    url = served_node.url
    cluster = ClusterResource(urls=url)
    with dg.instance_for_test() as instance:
        def tick(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor,
                                         resources={"cluster": cluster}) as context:
                return log_sensor(context)

        assert isinstance(tick(None), dg.SkipReason)
        ingest(url)
        first = tick(None)
        (request,) = first.run_requests
        applied = int(first.cursor)
        assert request.run_config == range_run_config(0, applied)
        assert request.partition_key == TODAY
        assert isinstance(tick(first.cursor), dg.SkipReason)
        materialize(url, request.run_config, instance=instance)
        moved = tick(first.cursor)  # derived records are not events: skipped, and passed over
        assert not moved.run_requests and moved.skip_reason and int(moved.cursor) > applied
        ingest(url, contents=["Biscuit learned to swim"])
        (second,) = tick(first.cursor).run_requests
        after = second.run_config["ops"]["l0_events"]["config"]
        assert after["after"] == applied and after["until"] > applied


def test_memories_of_an_older_logic_are_re_derived_once(served_node):
    node, url = served_node.node, served_node.url
    ingest(url)
    materialize(url)
    model = ModelResource(provider="local")
    current = model.derivation()
    with dg.instance_for_test() as instance:
        def tick():
            with dg.build_sensor_context(instance=instance, resources={
                    "cluster": ClusterResource(urls=url), "model": model}) as context:
                return rederive_sensor(context)

        assert isinstance(tick(), dg.SkipReason)  # everything is the current logic's
        old = next(iter(derived(node, "l1").values()))
        node.submit([{**old, "derivation": "local-v0", "content": "an older logic's text"}])
        assert httpx.get(url + "/api/v1/admin/derivations").json()["derivations"] == {
            current: {TODAY: len(derived(node, "l1")) - 1}, "local-v0": {TODAY: 1}}
        (request,) = tick().run_requests
        assert request.partition_key == TODAY and request.run_key == f"rederive-{current}-{TODAY}"
        job = defs.resolve_job_def("memory_job")
        assert job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                      resources=resources(url)).success
        again = derived(node, "l1")[old["id"]]
        assert again["derivation"] == current and again["content"] == old["content"]
        assert isinstance(tick(), dg.SkipReason)


def test_ingest_sensor_run_retrieve_end_to_end(served_node):
    url = served_node.url
    ids = ingest(url)
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance,
                                     resources={"cluster": ClusterResource(urls=url)}) as ctx:
            (request,) = log_sensor(ctx).run_requests
        job = defs.resolve_job_def("memory_job")
        result = job.execute_in_process(run_config=request.run_config, instance=instance,
                                        partition_key=request.partition_key,
                                        resources=resources(url))
        assert result.success
        assert instance.get_latest_materialization_event(keys.L1_MEMORIES) is not None
    body = httpx.post(url + "/api/v1/retrieve", json={
        "user_id": "user_1", "query": "dog Biscuit adopted", "top_k": 3, "layers": ["L1"]})
    top = body.json()["results"][0]
    assert top["layer"] == "L1" and "Biscuit" in top["content"]
    assert top["provenance"][0]["event_id"] == ids[2]
    assert top["provenance"][0]["metadata"] == {"turn": 2}


def test_backfill_replaces_memories_of_older_logic(served_node):
    node, url = served_node.node, served_node.url
    ids = ingest(url)
    stale = Memory(id="l1_from_old_logic", tenant="default", user_id="user_1", stream_id="chat",
                   content="old summary", source_event_ids=[ids[0]], derivation="v0")
    node.submit([stale.to_dict()])
    materialize(url)  # no range: the whole day, as a backfill partition run does
    memories = derived(node, "l1")
    assert "l1_from_old_logic" not in memories and len(memories) == 4
    found = node.retrieve("default", "user_1", "old summary", top_k=10, layers=["L1"])
    assert all(r["id"] != "l1_from_old_logic" for r in found)


def test_backfill_of_another_day_touches_nothing(served_node):
    node, url = served_node.node, served_node.url
    ingest(url)
    materialize(url, partition_key="2025-06-01")
    assert derived(node, "l1") == {}


@pytest.mark.parametrize(("bad", "error", "match"), [
    ({"after": -1}, pydantic.ValidationError, "greater than or equal to 0"),
    ({"until": "x"}, dg.DagsterInvalidConfigError, "until"),
])
def test_bad_run_config_is_refused_before_any_commit(served_node, bad, error, match):
    before = served_node.node.store.applied_index
    with pytest.raises(error, match=match):
        dg.materialize(MEMORY_ASSETS, resources=resources(served_node.url), partition_key=TODAY,
                       run_config={"ops": {"l0_events": {"config": bad}}})
    assert served_node.node.store.applied_index == before
