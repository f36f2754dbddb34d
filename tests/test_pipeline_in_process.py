"""Asset and sensor logic against a node in this process (real RocksDB, Tantivy, LanceDB and a
one-member Raft group; no uvicorn): the fast path for pipeline tests."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.storage.tags import PRIORITY_TAG

import sensors
from assets import ALL_ASSETS
from memorose_dagster.ids import new_id
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.partitions import chunk
from memorose_dagster.pipeline.resources import ModelResource
from memorose_dagster.records import Event
from sensors import log_sensor
from sensors.backlog import LogCursor, next_chunks

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
MEMORY_ASSETS = [a for a in ALL_ASSETS if a.key in keys.MEMORY_ASSETS]
FACTS = ["I moved to Lisbon with Maria last spring", "ok",
         "Maria and I adopted a dog called Biscuit in Lisbon",
         "We hike near Lisbon with Biscuit every Sunday", "Maria started a new job at Google"]


def ingest(node, contents=FACTS, user="user_1"):
    events = [Event(event_id=new_id(), tenant="default", user_id=user, stream_id="chat",
                    content=c, timestamp=1_800_000_000.0 + i) for i, c in enumerate(contents)]
    return node.ingest(events), [e.event_id for e in events]


def tick(cluster, cursor=None, instance=None):
    with dg.build_sensor_context(cursor=cursor, instance=instance or dg.DagsterInstance.ephemeral(),
                                 resources={"cluster": cluster}) as context:
        return log_sensor(context)


def test_the_sensor_requests_one_run_over_the_new_range(node):
    cluster = InProcessClusterResource.for_node(node)
    assert isinstance(tick(cluster), dg.SkipReason)
    index, _ = ingest(node)
    result = tick(cluster)
    assert [r.run_key for r in result.run_requests] == [f"log-0-{index}"]
    assert result.cursor == str(index)
    assert isinstance(tick(cluster, result.cursor), dg.SkipReason)


def span(request: dg.RunRequest) -> tuple[int, int]:
    return int(request.tags["memorose/log_after"]), int(request.tags["memorose/log_until"])


def waiting_run(instance: dg.DagsterInstance, priority: str) -> None:
    """A memory_job run in the queue (NOT_STARTED counts as QUEUED, which needs an origin)."""
    instance.add_run(dg.DagsterRun(job_name="memory_job", status=dg.DagsterRunStatus.NOT_STARTED,
                                   tags={PRIORITY_TAG: priority}))


def test_new_events_wait_for_the_next_fresh_range_while_one_waits(node):
    """No backlog: a tick each second must not queue a run each second behind the one running
    (the plain trickle's lag grew without end): while a fresh run waits, new events wait too."""
    cluster, instance = InProcessClusterResource.for_node(node), dg.DagsterInstance.ephemeral()
    first, _ = ingest(node)
    requested = tick(cluster, instance=instance)
    assert [span(r) for r in requested.run_requests] == [(0, first)]
    waiting_run(instance, sensors.FRESH_PRIORITY)
    later, _ = ingest(node, ["Biscuit learned to swim"])
    held = tick(cluster, requested.cursor, instance)
    assert isinstance(held, dg.SkipReason) and requested.cursor == str(first)
    instance.wipe()  # the waiting run started and ended
    (next_range,) = tick(cluster, requested.cursor, instance).run_requests
    assert span(next_range) == (first, later)


def test_the_sensor_hands_out_a_backlog_in_chunks_fresh_ranges_go_ahead_of(node, monkeypatch):
    monkeypatch.setattr(sensors, "CHUNK_EVENTS", 10)
    monkeypatch.setattr(sensors, "FRESH_TAIL", 2)
    cluster = InProcessClusterResource.for_node(node)
    instance = dg.DagsterInstance.ephemeral()
    for batch in range(8):  # a bulk load: 8 log entries of 4 events, 3 users
        end, _ = ingest(node, [f"Fact {i} of batch {batch}: I moved to Lisbon" for i in range(4)],
                        user=f"user_{batch % 3}")
    sent, _ = ingest(node, ["I started a new job at the harbour"], user="user_9")
    first = tick(cluster, instance=instance)
    tail, *chunks = first.run_requests  # the event sent after the bulk goes first
    assert span(tail) == (end, sent) and tail.tags[PRIORITY_TAG] == sensors.FRESH_PRIORITY
    assert len(chunks) == sensors.BACKLOG_QUEUE  # the rest once the queue drains

    for _ in range(sensors.BACKLOG_QUEUE):
        waiting_run(instance, sensors.BACKLOG_PRIORITY)
    later, _ = ingest(node, ["We adopted a dog called Biscuit"], user="user_9")
    ahead = tick(cluster, first.cursor, instance)  # two chunks wait: no more of them
    assert [span(r) for r in ahead.run_requests] == [(sent, later)]
    assert ahead.run_requests[0].tags[PRIORITY_TAG] == sensors.FRESH_PRIORITY
    ingest(node, ["Biscuit learned to swim"], user="user_9")
    waiting_run(instance, sensors.FRESH_PRIORITY)
    assert isinstance(tick(cluster, ahead.cursor, instance), dg.SkipReason)  # into the next one
    instance.wipe()
    for _ in range(sensors.BACKLOG_QUEUE):
        waiting_run(instance, sensors.BACKLOG_PRIORITY)
    monkeypatch.setattr(sensors, "BACKLOG_TURN", -1.0)  # the chunks waited their turn out
    assert isinstance(tick(cluster, ahead.cursor, instance), dg.SkipReason)  # fresh ones wait
    instance.wipe()  # the queue drained

    second = tick(cluster, ahead.cursor, instance)
    fresh, *rest = second.run_requests
    assert span(fresh) == (later, node.applied_index)
    assert fresh.tags[PRIORITY_TAG] == sensors.FRESH_PRIORITY
    assert "horizon" not in fresh.run_config["ops"]["l1_memories"]["config"]
    drained = tick(cluster, second.cursor, instance).cursor
    assert drained == str(node.applied_index)  # a plain index again

    chunks += rest
    ranges = [span(r) for r in chunks]
    assert ranges[0][0] == 0 and ranges[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # no gap
    events = dict(node.log_counts(0, 100, {"event"})["entries"])
    assert [sum(n for i, n in events.items() if a < i <= u) for a, u in ranges] == [12, 12, 8]
    assert [r.run_key for r in chunks] == [f"log-{a}-{u}" for a, u in ranges]
    assert {r.tags[PRIORITY_TAG] for r in chunks} == {sensors.BACKLOG_PRIORITY}
    assert int(sensors.FRESH_PRIORITY) > int(sensors.BACKLOG_PRIORITY)
    assert {r.run_config["ops"]["l1_memories"]["config"]["horizon"]
            for r in chunks} == {end}  # only later chunks of the backlog defer a user


def test_an_import_goes_to_the_backlog_lane_however_few_events_a_tick_finds(node, monkeypatch):
    """A bulk load's share in one tick (its first or last batch) can be smaller than a chunk:
    as a fresh range it held the fresh lane for 15-25 s while the traffic's next run waited. An
    entry of ``IMPORT_EVENTS`` or more is history sent in bulk: the backlog lane derives it and
    what precedes it in the tick; the traffic after it stays fresh."""
    monkeypatch.setattr(sensors, "IMPORT_EVENTS", 4)
    cluster, instance = InProcessClusterResource.for_node(node), dg.DagsterInstance.ephemeral()
    ingest(node, ["I started a new job at the harbour"], user="user_9")
    imported, _ = ingest(node, [f"Fact {i}: I moved to Lisbon" for i in range(4)])
    sent, _ = ingest(node, ["We adopted a dog called Biscuit"], user="user_9")
    first = tick(cluster, instance=instance)
    fresh, backlog = first.run_requests
    assert span(fresh) == (imported, sent) and fresh.tags[PRIORITY_TAG] == sensors.FRESH_PRIORITY
    assert span(backlog) == (0, imported)
    assert backlog.tags[PRIORITY_TAG] == sensors.BACKLOG_PRIORITY
    assert backlog.tags[sensors.LANE_TAG] == sensors.BACKLOG_LANE
    assert backlog.run_config["ops"]["l1_memories"]["config"]["horizon"] == imported

    small, _ = ingest(node, ["Biscuit learned to swim", "ok"], user="user_9")  # traffic only
    (plain,) = tick(cluster, first.cursor, instance).run_requests
    assert span(plain) == (sent, small) and plain.tags[sensors.LANE_TAG] == sensors.FRESH_LANE

    last, _ = ingest(node, [f"Fact {i}: I work at the harbour" for i in range(5)])
    (alone,) = tick(cluster, str(small), instance).run_requests  # nothing sent after it
    assert span(alone) == (small, last) and alone.tags[sensors.LANE_TAG] == sensors.BACKLOG_LANE


@pytest.mark.parametrize(("entries", "ranges"), [
    ([(2, 4), (3, 4), (5, 4), (6, 4)], [(0, 3), (3, 9)]),  # a remainder of 8 stands alone
    ([(2, 4), (3, 4), (5, 4), (6, 1)], [(0, 3), (3, 9)]),
    ([(2, 9), (3, 1)], [(0, 9)]),  # a small remainder joins the last range
    ([(2, 30), (4, 1)], [(0, 9)]),  # one entry over the size: one range
    ([(2, 8), (3, 8), (4, 8)], [(0, 2), (2, 3), (3, 9)]),  # entries after with no events
])
def test_a_backlog_is_cut_at_entry_boundaries_into_contiguous_ranges(entries, ranges):
    assert chunk(entries, 0, 9, 8) == ranges


def test_a_backlog_with_nothing_sent_after_it_runs_to_the_applied_index(node, monkeypatch):
    from memorose_dagster.records import Access

    monkeypatch.setattr(sensors, "CHUNK_EVENTS", 5)
    monkeypatch.setattr(sensors, "FRESH_TAIL", 2)
    for batch in range(3):
        _, ids = ingest(node, [f"Fact {i} of batch {batch}: I moved to Lisbon" for i in range(4)])
    node.submit([Access(tenant="default", user_id="user_1", record_id=ids[0],
                        target_kind="event", count=1, last_access=1.0).to_dict()],
                wait_indexed=False)  # an entry without events ends the log
    result = tick(InProcessClusterResource.for_node(node), instance=dg.DagsterInstance.ephemeral())
    ranges = [span(r) for r in result.run_requests]
    assert ranges[0][0] == 0 and ranges[-1][1] == node.applied_index and len(ranges) == 2
    assert {r.tags[PRIORITY_TAG] for r in result.run_requests} == {sensors.BACKLOG_PRIORITY}


@pytest.mark.parametrize("wanted", [1, 2, 5])
def test_a_backlog_handed_out_a_few_chunks_at_a_time_is_cut_as_at_once(node, wanted):
    for i, n in enumerate([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]):
        ingest(node, [f"Fact {j} of entry {i}" for j in range(n)])
    end = node.applied_index
    cluster = InProcessClusterResource.for_node(node)
    whole = chunk(cluster.event_counts(0, end)[0], 0, end, 10)
    node.store.scan_budget = 3  # pages of 3 entries: counting stops once it has enough
    cursor, handed = LogCursor(end, [(0, end)]), []
    for _ in range(len(whole)):
        handed += [(after, until) for after, until, _ in next_chunks(cursor, cluster, wanted, 10)]
    assert handed == whole and not cursor.backlogs and len(whole) > 5


def test_the_memory_assets_derive_through_an_in_process_node(node):
    _, ids = ingest(node)
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    result = dg.materialize(MEMORY_ASSETS, resources=resources, partition_key=TODAY)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    memories = node.user_records("l1", "default", "user_1")
    assert memories and {s for m in memories for s in m["source_event_ids"]} <= set(ids)
    assert ids[1] not in {s for m in memories for s in m["source_event_ids"]
                          if len(m["source_event_ids"]) == 1}  # "ok" is noise
    entities = {e["name"] for e in node.user_records("entity", "default", "user_1")}
    assert {"Lisbon", "Maria"} <= entities
    found = node.retrieve("default", "user_1", "where does she live", 5, layers=["L1"])
    assert found and found[0]["layer"] == "L1"


def test_the_sensor_moves_its_cursor_past_a_long_stretch_without_events(node):
    from memorose_dagster.records import Access

    cluster = InProcessClusterResource.for_node(node)
    first, ids = ingest(node, FACTS[:1])
    cursor = tick(cluster).cursor
    assert cursor == str(first)
    node.store.scan_budget = 5  # a read of the log looks at 5 entries at most (100,000 live)
    for _ in range(12):  # access flushes, no ingest
        node.submit([Access(tenant="default", user_id="user_1", record_id=ids[0],
                            target_kind="event", count=1, last_access=1.0).to_dict()],
                    wait_indexed=False)
    later, _ = ingest(node, FACTS[1:2])
    for _ in range(5):
        result = tick(cluster, cursor)
        if isinstance(result, dg.SensorResult) and result.run_requests:
            break
        assert int(result.cursor) > int(cursor), "the cursor must move past entries"
        cursor = result.cursor
    else:
        raise AssertionError("no run requested for the event after the access flushes")
    after, until = map(int, result.run_requests[0].run_key.split("-")[1:])
    assert first < after < later <= until


def test_the_graph_retires_entities_and_edges_no_memory_names_any_more(node):
    """A graph written under another recipe (an older derivation's ids) or naming what a
    forget removed is not left behind: a rerun retires what it no longer derives."""
    from memorose_dagster.records import Entity, Relation

    ingest(node)
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    stale = Entity(id="ent_old_recipe", tenant="default", user_id="user_1", name="Lisbon",
                   entity_type="place")
    edge = Relation(id="rel_old_recipe", tenant="default", user_id="user_1",
                    source="ent_old_recipe", target="ent_old_recipe", relation="co_occurs")
    node.submit([stale.to_dict(), edge.to_dict()])
    assert dg.materialize(MEMORY_ASSETS, resources=resources, partition_key=TODAY).success
    entities = node.user_records("entity", "default", "user_1")
    relations = node.user_records("relation", "default", "user_1")
    assert "Lisbon" in {e["name"] for e in entities} and relations
    assert "ent_old_recipe" not in {e["id"] for e in entities}
    assert "rel_old_recipe" not in {r["id"] for r in relations}
    known = {e["id"] for e in entities} | {m["id"] for m in node.user_records("l1", "default",
                                                                             "user_1")}
    assert all(r["source"] in known and r["target"] in known for r in relations)


def test_a_bulk_load_seen_over_two_ticks_is_one_backlog(node, monkeypatch):
    """Its chunks requested after the second tick defer to the whole load's end, not to the
    end of the first tick's share."""
    monkeypatch.setattr(sensors, "CHUNK_EVENTS", 10)
    monkeypatch.setattr(sensors, "FRESH_TAIL", 2)
    cluster = InProcessClusterResource.for_node(node)
    instance = dg.DagsterInstance.ephemeral()

    def bulk(batches: range) -> int:
        for batch in batches:  # log entries of 4 events, 3 users
            end, _ = ingest(node, [f"Fact {i} of batch {batch}: I moved to Lisbon"
                                   for i in range(4)], user=f"user_{batch % 3}")
        return end

    share = bulk(range(8))
    first = tick(cluster, instance=instance)
    assert len(first.run_requests) == sensors.BACKLOG_QUEUE  # a chunk of the share is left
    for _ in range(sensors.BACKLOG_QUEUE):
        waiting_run(instance, sensors.BACKLOG_PRIORITY)
    end = bulk(range(8, 16))
    full = tick(cluster, first.cursor, instance)
    assert not full.run_requests  # the queue is full: the new events join the backlog
    instance.wipe()  # the queue drained
    cursor, later = full.cursor, []
    while (result := tick(cluster, cursor, instance)).run_requests:
        later += result.run_requests
        cursor = result.cursor
        instance.wipe()
    chunks = list(first.run_requests) + later
    ranges = [span(r) for r in chunks]
    assert ranges[0][0] == 0 and ranges[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # no gap
    horizons = [r.run_config["ops"]["l1_memories"]["config"]["horizon"] for r in chunks]
    assert horizons[:sensors.BACKLOG_QUEUE] == [share] * sensors.BACKLOG_QUEUE
    assert horizons[sensors.BACKLOG_QUEUE:] == [end] * len(later) and later
