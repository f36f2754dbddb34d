"""The audits: each fault seeded into the real stores (RocksDB through the log, Tantivy through
the node's index) is caught, and clean data passes; the Dagster checks carry the verdicts."""

from __future__ import annotations

import dagster as dg
import pytest
from test_lake import derive, ingest, resources
from test_pipeline_in_process import FACTS

from assets import LAKE_ASSETS
from memorose_dagster.index.fulltext import TextDoc
from memorose_dagster.lake import build
from memorose_dagster.lake.in_process import LakeNodeClient
from memorose_dagster.lake.report import as_table, build_report
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.records import Insight, Tombstone

OTHER = ["Tom plays the cello in an orchestra in Porto", "Tom is learning Japanese at night",
         "Tom visited Kyoto with his sister Ana"]


@pytest.fixture
def seeded(node, tmp_path):
    ingest(node, FACTS)
    ingest(node, OTHER, user="user_2")
    derive(node, tmp_path / "lake")
    return node


def audit(node, tmp_path, **kwargs) -> dict:
    root = tmp_path / "lake"
    client = LakeNodeClient(node)
    build.refresh(client, root)
    report = build_report(root, client.index_census(), node.applied_index, **kwargs)
    report["by_name"] = {a["name"]: a for a in report["audits"]}
    return report


def failing(report) -> set[str]:
    return {a["name"] for a in report["audits"] if not a["passed"]}


def memories(node, user="user_1"):
    return sorted(node.user_records("l1", "default", user), key=lambda m: m["id"])


def commit(node, *records):
    node.commit_derived([r.to_dict() if hasattr(r, "to_dict") else r for r in records])


def test_clean_data_passes_every_audit(seeded, tmp_path):
    report = audit(seeded, tmp_path)
    assert failing(report) == set(), as_table(report)
    assert report["passed"]
    coverage = report["by_name"]["provenance"]["metrics"]["events_by_status"]
    assert coverage["noise"] == 1 and coverage.get("uncovered", 0) == 0  # "ok" was noise
    assert "all blocking audits passed" in as_table(report)


def test_provenance_catches_a_memory_whose_source_is_gone(seeded, tmp_path):
    orphan = {**memories(seeded)[0], "id": "l1_orphan", "content": "A memory of nothing",
              "source_event_ids": ["01ZZZZZZZZZZZZ"]}
    commit(seeded, orphan)
    report = audit(seeded, tmp_path)
    assert failing(report) == {"provenance"}
    sample = report["by_name"]["provenance"]["rules"]["missing_sources"]["sample"]
    assert sample[0]["from_id"] == "l1_orphan" and not report["passed"]


def test_integrity_catches_an_orphan_relation(seeded, tmp_path):
    relation = seeded.user_records("relation", "default", "user_1")[0]
    commit(seeded, Tombstone(tenant="default", target_kind="entity", target_id=relation["source"],
                             reason="seeded fault"))
    rules = audit(seeded, tmp_path)["by_name"]["integrity"]["rules"]
    assert rules["orphan_links"]["count"] >= 1
    assert relation["source"] in {r["to_id"] for r in rules["orphan_links"]["sample"]}


def test_integrity_catches_a_duplicate_memory(seeded, tmp_path):
    original = memories(seeded)[0]
    commit(seeded, {**original, "id": "l1_copy", "content": original["content"].upper() + "!"})
    report = audit(seeded, tmp_path)
    assert failing(report) == {"integrity"}
    dupes = report["by_name"]["integrity"]["rules"]["duplicate_memories"]["sample"]
    assert dupes[0]["ids"] == sorted([original["id"], "l1_copy"])


def test_integrity_catches_a_forgotten_memory_left_in_tantivy(seeded, tmp_path):
    gone = memories(seeded)[0]
    seeded.forgetter.forget("default", "L1", gone["id"])
    fulltext = seeded.indexer.fulltext  # the fault: a document the indexer should have dropped
    fulltext.upsert([TextDoc(gone["id"], "default", "user_1", "chat", "L1", gone["content"])])
    fulltext.commit()
    report = audit(seeded, tmp_path)
    assert {"integrity", "consistency"} <= failing(report)
    found = report["by_name"]["integrity"]["rules"]["tombstoned_present"]["sample"]
    assert [(r["target_id"], r["reason"]) for r in found] == [(gone["id"], "stray in an index")]


def test_consistency_catches_a_stale_index(seeded, tmp_path):
    event_id = seeded.user_records("event", "default", "user_2")[0]["event_id"]
    seeded.indexer.fulltext.delete([("default", event_id)])  # the fault: Tantivy lost it
    seeded.indexer.fulltext.commit()
    report = audit(seeded, tmp_path)
    assert failing(report) == {"consistency"} and report["passed"]  # rebuildable: a warning
    row = report["by_name"]["consistency"]["rules"]["index_counts"]["sample"][0]
    assert (row["user_id"], row["layer"], row["rocksdb"] - row["tantivy"]) == ("user_2", "L0", 1)


def test_isolation_catches_a_link_across_users(seeded, tmp_path):
    mine, theirs = memories(seeded), memories(seeded, "user_2")
    commit(seeded, Insight(id="l2_mixed", tenant="default", user_id="user_1", content="mixed",
                           member_ids=[mine[0]["id"], theirs[0]["id"]],
                           source_event_ids=mine[0]["source_event_ids"]))
    report = audit(seeded, tmp_path)
    assert failing(report) == {"isolation"}
    link = report["by_name"]["isolation"]["rules"]["cross_links"]["sample"][0]
    assert (link["from_id"], link["to_user"]) == ("l2_mixed", "user_2")


def test_supersede_catches_a_cycle_and_a_missing_replacement(seeded, tmp_path):
    a, b, c = memories(seeded)[:3]
    commit(seeded, {**a, "superseded_by": b["id"]}, {**b, "superseded_by": a["id"]},
           {**c, "superseded_by": "l1_nowhere"})
    report = audit(seeded, tmp_path)
    assert failing(report) == {"supersede"}
    problems = report["by_name"]["supersede"]["rules"]["chains"]["sample"]
    assert {(p["id"], p["problem"]) for p in problems} == {
        (a["id"], "cycle"), (b["id"], "cycle"), (c["id"], "replacement l1_nowhere missing")}


def test_freshness_reports_consolidation_lag(seeded, tmp_path):
    ingest(seeded, ["Ana moved to Osaka for a new job"], user="user_2")  # not derived yet
    report = audit(seeded, tmp_path, max_lag_seconds=0.0)
    assert failing(report) == {"freshness"} and report["passed"]
    lag = report["charts"]["consolidation_lag"]
    assert [(r["user_id"], r["pending_events"]) for r in lag] == [("user_2", 1)]
    assert audit(seeded, tmp_path)["by_name"]["freshness"]["passed"]  # under a day: fine


def test_forgetting_counts_what_was_removed_and_kept(seeded, tmp_path):
    kept = len(memories(seeded)) + len(memories(seeded, "user_2"))
    seeded.forgetter.forget("default", "L1", memories(seeded)[0]["id"])
    metrics = audit(seeded, tmp_path)["by_name"]["forgetting"]["metrics"]
    assert metrics["forgotten"] == 1 and metrics["kept"] == kept - 1


def test_the_audit_asset_reports_its_checks_in_dagster(seeded, tmp_path):
    res = resources(seeded, tmp_path / "lake")
    assert dg.materialize(LAKE_ASSETS[:1], resources=res).success
    result = dg.materialize(LAKE_ASSETS[1:], resources=res)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {name: True for name in keys.AUDIT_CHECKS.values()}
    a, b = memories(seeded)[:2]
    commit(seeded, {**a, "superseded_by": b["id"]}, {**b, "superseded_by": a["id"]})
    assert dg.materialize(LAKE_ASSETS[:1], resources=res).success
    result = dg.materialize(LAKE_ASSETS[1:], resources=res, raise_on_error=False)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks[keys.AUDIT_CHECKS["supersede"]] is False
    assert (tmp_path / "lake" / "_audit" / "report.json").exists()
