"""An incremental lake write merges what a log range changed: it reads only the changed records
back from the node (no scan of a kind), rewrites only the partitions that held or now hold
them, and leaves the lake byte for byte what a full rebuild writes."""

from __future__ import annotations

import numpy as np
import polars as pl
from conftest import make_settings
from starlette.testclient import TestClient
from test_lake import YESTERDAY, ingest, snapshot
from test_pipeline_in_process import TODAY

from api import create_app
from memorose_dagster.ids import new_id
from memorose_dagster.lake import build, files
from memorose_dagster.lake.in_process import LakeNodeClient
from memorose_dagster.node.node import Node
from memorose_dagster.records import Access, Entity, Event, Memory, Relation, Tombstone, Vector


class Counting(LakeNodeClient):
    """Counts what the lake asked the node for."""

    def __init__(self, node):
        super().__init__(node)
        self.scans, self.ids_read = 0, 0

    def lake_records(self, *args, **kwargs):
        self.scans += 1
        return super().lake_records(*args, **kwargs)

    def lake_rows(self, tenant, ids):
        self.ids_read += len(ids)
        return super().lake_rows(tenant, ids)


def memory(mid: str, event_ids: list[str], user: str = "user_1") -> dict:
    return Memory(id=mid, tenant="default", user_id=user, stream_id="chat",
                  content=f"memory {mid}", source_event_ids=event_ids).to_dict()


def vector(mid: str) -> dict:
    values = np.full(384, 1 / np.sqrt(384), dtype="<f4")
    return Vector(tenant="default", record_id=mid, layer="L1", model="test",
                  values=values.tobytes()).to_dict()



def test_a_log_range_is_merged_like_a_full_rebuild(node, tmp_path):
    root = tmp_path / "lake"
    ingest(node, [f"yesterday fact {i}" for i in range(5)], days_ago=1)
    ingest(node, [f"today fact {i}" for i in range(5)])
    ingest(node, ["an untouched user's fact"], user="user_3")
    events = sorted(node.user_records("event", "default", "user_1"), key=lambda e: e["event_id"])
    old, new = events[:5], events[5:]
    node.commit_derived([
        memory("m_old", [old[0]["event_id"]]), vector("m_old"),
        memory("m_new", [new[0]["event_id"]]), vector("m_new"),
        memory("m_moves", [new[1]["event_id"]]),
        Entity(id="ent", tenant="default", user_id="user_1", name="Biscuit",
               memory_ids=["m_old", "m_new"]).to_dict(),
        Relation(id="rel", tenant="default", user_id="user_1", source="ent", target="m_new",
                 relation="mentioned_in", source_event_ids=[new[0]["event_id"]]).to_dict(),
        Access(tenant="default", user_id="user_1", record_id="m_old", target_kind="l1",
               count=2, last_access=1.0).to_dict()])
    client = Counting(node)
    build.refresh(client, root)
    assert pl.read_parquet(files.table_glob(root, "entities"))["day"].to_list() == [YESTERDAY]
    untouched = files.partition_path(root, "events", "default", YESTERDAY)
    untouched_mtime = untouched.stat().st_mtime_ns

    before, client.scans = node.applied_index, 0
    ingest(node, ["one more fact today"], user="user_2")
    node.commit_derived([
        Tombstone(tenant="default", target_kind="l1", target_id="m_old",
                  reason="decayed").to_dict(),  # its vector and access go; the entity moves
        memory("m_moves", [old[1]["event_id"]]),  # re-derived: today -> yesterday
        Tombstone(tenant="default", target_kind="relation", target_id="rel",
                  reason="retired").to_dict()])  # undated
    stats = build.merge_range(client, root, before, None)

    assert client.scans == 0  # nothing scanned: the changed ids were read by key
    assert client.ids_read == 5  # the new event, m_old, m_moves, rel and the entity naming m_old
    assert stats["events"]["rows"] == 1 and stats["events"]["files_written"] == 1
    assert untouched.stat().st_mtime_ns == untouched_mtime  # yesterday's events: no change
    entities = pl.read_parquet(files.table_glob(root, "entities"))
    assert entities["day"].to_list() == [TODAY]
    memories = dict(pl.read_parquet(files.table_glob(root, "memories")).select(
        "id", "day").iter_rows())
    assert memories == {"m_new": TODAY, "m_moves": YESTERDAY}
    assert pl.read_parquet(files.table_glob(root, "vectors"))["record_id"].to_list() == ["m_new"]
    assert not files.partitions(root, "access")
    assert ("default", "undated") in files.partitions(root, "tombstones")
    merged = snapshot(root)
    files.drop(root)
    build.refresh(client, root)
    assert snapshot(root) == merged


def test_an_empty_range_rewrites_nothing(node, tmp_path):
    root = tmp_path / "lake"
    ingest(node, ["a fact"])
    client = Counting(node)
    build.refresh(client, root)
    stats = build.merge_range(client, root, node.applied_index, None)
    assert all(s["files_written"] == 0 and s["files_removed"] == 0 for s in stats.values())
    assert client.ids_read == 0


def test_rows_by_key_over_http(tmp_path, embedder):
    node = Node(make_settings(tmp_path / "k", api_keys={"key-acme-0123456789": "acme"},
                              admin_key="admin-0123456789abcdef"), embedder=embedder)
    node.wait_ready()
    try:
        ingest_id = new_id()
        node.ingest([Event(event_id=ingest_id, tenant="acme", user_id="u", stream_id="s",
                           content="a fact", timestamp=1.0)])
        with TestClient(create_app(node=node)) as http:
            body = {"tenant": "acme", "ids": [ingest_id, "no_such_id"]}
            admin = {"Authorization": "Bearer admin-0123456789abcdef"}
            tenant = {"Authorization": "Bearer key-acme-0123456789"}
            assert http.post("/api/v1/admin/lake/rows", json=body, headers=tenant)\
                .status_code == 403
            answer = http.post("/api/v1/admin/lake/rows", json=body, headers=admin)
            assert answer.status_code == 200
            [row] = answer.json()["records"]
            assert (row["kind"], row["event_id"], row["day"]) == ("event", ingest_id, TODAY)
            bad = http.post("/api/v1/admin/lake/rows", headers=admin,
                            json={"tenant": "acme", "ids": ["a\x1fb"]})
            assert bad.status_code == 400 and bad.json()["error"]["field"].startswith("ids")
            touched = http.get("/api/v1/admin/lake/touched?after=0", headers=admin).json()
            assert ["acme", ingest_id] in touched["ids"]
    finally:
        node.close()
