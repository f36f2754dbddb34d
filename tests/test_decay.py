"""Decay and access reinforcement: strength, what decay may prune, the user's clock, the decay
asset under a real Dagster run, and access counts flushed through the Raft log into RocksDB."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest
from conftest import wait_until
from rocksdict import Options, Rdict, WriteBatch
from test_forgetting import NOW, derive, ingest, memory_of, records, retrieved_ids

from assets.memory_decay import memory_decay
from memorose_dagster.log import keys as store_keys
from memorose_dagster.log.access_totals import apply_access
from memorose_dagster.log.keys import access as access_key
from memorose_dagster.memory import forget
from memorose_dagster.memory.forget import DAY, select_prunable, strength, user_clock
from memorose_dagster.node.access import AccessLog
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import Access, pack, unpack


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


def test_access_flush_is_one_log_command(served_node):
    node, ids = served_node.node, ingest(served_node.url)
    derive(served_node.url)
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
