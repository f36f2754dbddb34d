"""The audit SQL on its own: small hand-made lakes, no node."""

from __future__ import annotations

from memorose_dagster.ids import id_floor
from memorose_dagster.lake import files, views
from memorose_dagster.lake.audit_sql import COVERAGE
from memorose_dagster.lake.audits import rows, run_audits
from memorose_dagster.lake.tables import frame

DAY = "2026-01-02"
E1, E2 = id_floor(1_767_312_000_000), id_floor(1_767_312_000_001)


def event(eid, tenant="t", user="u", content="I moved to Lisbon", **extra):
    return {"kind": "event", "event_id": eid, "tenant": tenant, "user_id": user,
            "stream_id": "s", "content": content, "timestamp": 1.0, "day": DAY, **extra}


def memory(mid, sources, tenant="t", user="u", content="moved to Lisbon", **extra):
    return {"kind": "l1", "id": mid, "tenant": tenant, "user_id": user, "stream_id": "s",
            "content": content, "source_event_ids": sources, "day": DAY, **extra}


def lake(tmp_path, **tables):
    for table, records in tables.items():
        df = frame(table, records)
        files.write_partitions(tmp_path, table, df, {(r["tenant"], r["day"]) for r in records})
    return views.connect(tmp_path)


def by_name(report):
    return {a["name"]: a for a in report["audits"]}


def test_an_empty_lake_passes(tmp_path):
    report = run_audits(views.connect(tmp_path), now=0.0)
    assert report["passed"] and all(a["passed"] for a in report["audits"])


def test_normalised_duplicates_and_superseded_history(tmp_path):
    con = lake(tmp_path, events=[event(E1), event(E2)], memories=[
        memory("a", [E1], content="Moved to  Lisbon."),
        memory("b", [E2], content="moved to lisbon"),
        memory("c", [E2], content="moved to lisbon", superseded_by="a")])
    dupes = by_name(run_audits(con))["integrity"]["rules"]["duplicate_memories"]["sample"]
    assert [(d["normalised"], d["ids"]) for d in dupes] == [("moved to lisbon", ["a", "b"])]


def test_a_source_in_another_tenant_is_a_cross_tenant_link(tmp_path):
    con = lake(tmp_path, events=[event(E1, tenant="other")],
               memories=[memory("a", [E1])])
    audits = by_name(run_audits(con))
    assert audits["isolation"]["rules"]["cross_links"]["sample"][0]["to_tenant"] == "other"
    assert not audits["provenance"]["passed"]  # and this tenant holds no such event


def test_the_same_id_owned_by_both_users_is_no_cross_link(tmp_path):
    shared = [{"kind": "entity", "id": "ent_lisbon", "tenant": "t", "user_id": u,
               "name": "Lisbon", "memory_ids": [m], "day": DAY} for u, m in (("u", "a"),
                                                                             ("v", "b"))]
    con = lake(tmp_path, events=[event(E1), event(E2, user="v")],
               memories=[memory("a", [E1]), memory("b", [E2], user="v", content="other")],
               entities=shared)
    assert by_name(run_audits(con))["isolation"]["passed"]


def test_coverage_classifies_every_event(tmp_path):
    e3 = id_floor(1_767_312_000_002)
    con = lake(tmp_path, events=[event(E1), event(E2, content="ok"),
                                 event(e3, content="Ana starts at Google")],
               memories=[memory("a", [E1])])
    status = {r["event_id"]: r["status"] for r in rows(con, COVERAGE)}
    assert status == {E1: "covered", E2: "pending", e3: "pending"}
    con = lake(tmp_path, memories=[memory("a", [E1]), memory("z", [e3], content="Ana, Google")])
    status = {r["event_id"]: r["status"] for r in rows(con, COVERAGE)}
    assert status == {E1: "covered", E2: "noise", e3: "covered"}
