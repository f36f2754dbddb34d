"""The lake: every layer as parquet through the lake assets, rebuilt byte for byte, written
incrementally (a log range rewrites only the partitions it touched)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from test_pipeline_in_process import FACTS, MEMORY_ASSETS, TODAY

from assets import LAKE_ASSETS
from memorose_dagster.ids import id_floor, new_id
from memorose_dagster.lake import files
from memorose_dagster.lake.in_process import InProcessLakeCluster
from memorose_dagster.lake.resource import LakeResource
from memorose_dagster.lake.tables import TABLES, frame, schema, to_records
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.definitions import defs
from memorose_dagster.pipeline.resources import ModelResource
from memorose_dagster.records import Event
from sensors.lake import lake_run_config

LAKE = [LAKE_ASSETS[0]]
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


def ingest(node, contents, user="user_1", days_ago=0):
    ms = int((time.time() - days_ago * 86400) * 1000)
    # new_id never goes back in time within a process: an id of another day is made by hand
    events = [Event(event_id=id_floor(ms + i) if days_ago else new_id(), tenant="default",
                    user_id=user, stream_id="chat", content=c, timestamp=ms / 1000 + i)
              for i, c in enumerate(contents)]
    return node.ingest(events)


def resources(node, root: Path) -> dict:
    return {"cluster": InProcessLakeCluster.for_node(node), "model": ModelResource(),
            "lake": LakeResource(root=str(root))}


def derive(node, root, partition=TODAY):
    result = dg.materialize(MEMORY_ASSETS, resources=resources(node, root),
                            partition_key=partition)
    assert result.success


def lake(node, root, partition=None, run_config=None):
    result = dg.materialize(LAKE, resources=resources(node, root), partition_key=partition,
                            run_config=run_config)
    assert result.success
    return result


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_frames_round_trip_every_field():
    event = {"kind": "event", "event_id": new_id(), "tenant": "t", "user_id": "u",
             "stream_id": "s", "content": "hi", "timestamp": 1.5, "content_type": "text",
             "metadata": {"b": [1, 2], "a": "x"}, "log_index": 3, "day": "2026-01-01"}
    df = frame("events", [event])
    assert df.columns[:2] == ["tenant", "day"]
    assert df["metadata"][0] == '{"a": "x", "b": [1, 2]}'
    back = to_records("events", df)[0]
    assert back == {k: v for k, v in event.items() if k != "day"}
    assert "values" not in schema("vectors") and "dim" in schema("vectors")
    assert set(schema("memories")) >= {"source_event_ids", "superseded_by", "importance"}


def test_the_lake_holds_every_layer_and_rebuilds_byte_for_byte(node, tmp_path):
    root = tmp_path / "lake"
    ingest(node, FACTS)
    derive(node, root)
    result = lake(node, root)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == set(keys.LAKE_ASSETS.values())
    memories = pl.read_parquet(files.table_glob(root, "memories"))
    stored = node.user_records("l1", "default", "user_1")
    assert sorted(memories["id"]) == sorted(m["id"] for m in stored)
    assert set(memories["day"]) == {TODAY}
    vectors = pl.read_parquet(files.table_glob(root, "vectors"))
    assert set(vectors["dim"]) == {384} and "values" not in vectors.columns
    assert pl.read_parquet(files.table_glob(root, "events")).height == len(FACTS)
    first = snapshot(root)
    files.drop(root)
    lake(node, root)
    assert snapshot(root) == first


def test_a_log_range_rewrites_only_the_partitions_it_touched(node, tmp_path):
    root = tmp_path / "lake"
    ingest(node, FACTS[:3], days_ago=1)
    derive(node, root, YESTERDAY)
    before = node.applied_index
    lake(node, root)
    old_day = files.partition_path(root, "events", "default", YESTERDAY)
    old_mtime = old_day.stat().st_mtime_ns
    ingest(node, FACTS[3:], user="user_2")  # another stream: nothing of yesterday re-derived
    derive(node, root)
    result = lake(node, root, TODAY, lake_run_config(before, node.applied_index))
    events = next(m for m in result.get_asset_materialization_events()
                  if m.asset_key == keys.LAKE_ASSETS["events"])
    assert events.materialization.metadata["scope"].value == "log range"
    assert old_day.stat().st_mtime_ns == old_mtime  # yesterday's events were not rewritten
    assert files.partition_path(root, "events", "default", TODAY).exists()
    assert {d for _, d in files.partitions(root, "events")} == {YESTERDAY, TODAY}
    incremental = snapshot(root)
    files.drop(root)
    lake(node, root)
    assert snapshot(root) == incremental


def test_a_forgotten_event_leaves_the_lake_on_the_next_range(node, tmp_path):
    root = tmp_path / "lake"
    ingest(node, FACTS)
    derive(node, root)
    lake(node, root)
    before = node.applied_index
    event_id = node.user_records("event", "default", "user_1")[0]["event_id"]
    node.forgetter.forget("default", "L0", event_id)
    lake(node, root, TODAY, lake_run_config(before, node.applied_index))
    events = pl.read_parquet(files.table_glob(root, "events"))
    assert event_id not in set(events["event_id"])
    tombstones = pl.read_parquet(files.table_glob(root, "tombstones"))
    assert event_id in set(tombstones["target_id"])


def test_the_lake_and_audit_show_in_the_definitions_with_lineage():
    graph = defs.resolve_asset_graph()
    assert graph.get(keys.LAKE_ASSETS["memories"]).parent_keys == {keys.L1_MEMORIES}
    assert set(graph.get(keys.MEMORY_AUDIT).parent_keys) == set(keys.LAKE_ASSETS.values())
    checks = {c.name for c in graph.get_check_keys_for_assets([keys.MEMORY_AUDIT])}
    assert checks == set(keys.AUDIT_CHECKS.values())
    assert all(graph.get(k).description for k in keys.LAKE_ASSETS.values())
    assert set(TABLES) == set(keys.LAKE_ASSETS)
    schedules = {s.name: getattr(s, "cron_schedule", None) for s in defs.schedules}
    assert schedules["nightly_audit_schedule"] == "0 5 * * *"


def test_pages_of_a_kind_continue_where_the_last_one_ended(node):
    from memorose_dagster.node.inventory import lake_page

    ingest(node, FACTS)
    pages, after = [], None
    while True:
        page, after = lake_page(node.store, "event", None, None, after, 2)
        pages.append([r["event_id"] for r in page])
        if after is None:
            break
    assert [len(p) for p in pages[:-1]] == [2] * (len(pages) - 1)
    events = [e for p in pages for e in p]
    assert len(events) == len(FACTS) == len(set(events)) and events == sorted(events)
