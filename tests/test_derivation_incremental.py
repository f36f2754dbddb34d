"""Derivation costs what is new: unchanged records are not committed or embedded again, and what
is derived run by run over log ranges is what one run over everything derives."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

import sensors
from assets import ALL_ASSETS
from assets.selection import LOOKAHEAD_ENTRIES, users_coming
from memorose_dagster.ids import new_id
from memorose_dagster.log import keys
from memorose_dagster.pipeline import asset_keys as keys_
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.partitions import LogRange, range_run_config
from memorose_dagster.pipeline.resources import ModelResource
from memorose_dagster.records import Event

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")
MEMORY_ASSETS = [a for a in ALL_ASSETS if a.key in keys_.MEMORY_ASSETS]
SESSIONS = [
    ["Ruth: I moved to Denver last spring and I love it.", "Assistant: How is Denver?",
     "Ruth: We went camping at Bear Lake with Sam, the stars were unreal.",
     "Assistant: Sounds lovely!", "Ruth: I drive a Civic these days, way cheaper on fuel."],
    ["Ruth: Planning another camping trip with Sam next month.", "Assistant: Where to?",
     "Ruth: I signed a lease on a flat in Seattle last week.", "Assistant: Big change!",
     "Ruth: I bought a new tent for camping, the old one leaked all night."],
    ["Ruth: Camping again this weekend with Jo near Seattle.", "Assistant: ok",
     "Ruth: I sold the old car and got a Tesla.", "Assistant: Nice.",
     "Ruth: I moved to Denver last spring and I love it."],
]


def events_of(session: int, user: str = "user_1") -> list[Event]:
    return [Event(event_id=new_id(), tenant="default", user_id=user,
                  stream_id=f"session_{session}", content=c,
                  timestamp=1_800_000_000.0 + 86_400 * session + i)
            for i, c in enumerate(SESSIONS[session])]


def ingest(node, session: int) -> int:
    return node.ingest(events_of(session))


def run(node, after: int, until: int, config: dict | None = None) -> dg.ExecuteInProcessResult:
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    result = dg.materialize(MEMORY_ASSETS, resources=resources, partition_key=TODAY,
                            run_config=config or range_run_config(after, until))
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    return result


def meta(result: dg.ExecuteInProcessResult, asset: str, name: str) -> int:
    (materialization,) = result.asset_materializations_for_node(asset)
    return int(materialization.metadata[name].value)


def derived(node, user: str = "user_1") -> dict[str, dict[str, dict]]:
    """Every derived record of a user by kind and id, without the log index it was written at."""
    return {kind: {r["id"]: {k: v for k, v in r.items() if k != "log_index"}
                   for r in node.user_records(kind, "default", user)}
            for kind in ("l1", "l2", "entity", "relation")}


def test_unchanged_records_are_neither_committed_nor_embedded_again(node):
    first = ingest(node, 0)
    run(node, 0, first)
    second = ingest(node, 1)
    run(node, first, second)
    again = run(node, first, second)  # a rerun of the same range: nothing is new
    assert meta(again, "l1_memories", "embedded") == 0
    assert meta(again, "l2_insights", "changed") == 0
    assert meta(again, "memory_graph", "changed") == 0
    assert meta(again, "memory_graph", "records_out") > 0, "the graph is derived, not committed"
    for kind in ("l1", "l2"):
        for record in node.user_records(kind, "default", "user_1"):
            assert node.store.get(keys.vector("default", record["id"])) is not None, record


@pytest.mark.parametrize("backlog", [False, True])
def test_runs_over_ranges_derive_what_one_run_over_everything_does(tmp_path, embedder, backlog):
    """Run by run as events arrive, or over ranges of a backlog already committed (where the
    graph and insights of a user with more to come wait for the last range): the same."""
    from conftest import make_settings

    from memorose_dagster.node.node import Node

    nodes = [Node(make_settings(tmp_path / name), embedder=embedder) for name in ("a", "b")]
    try:
        for n in nodes:
            n.wait_ready()
        stepwise, whole = nodes
        sessions = [events_of(session) for session in range(len(SESSIONS))]
        ranges, cursor, deferred = [], 0, 0
        for events in sessions:
            until = stepwise.ingest(events)
            whole.ingest(events)
            ranges.append((cursor, until))
            cursor = until
            if not backlog:
                run(stepwise, *ranges[-1])
        if backlog:
            for after, until in ranges:
                result = run(stepwise, after, until)
                deferred += meta(result, "l2_insights", "users_deferred")
                deferred += meta(result, "memory_graph", "users_deferred")
            assert deferred, "the middle range leaves the graph and insights to the last"
        assert_as_one_run(stepwise, whole)
    finally:
        for n in nodes:
            n.close()


def assert_as_one_run(derived_in_parts, whole) -> None:
    """``whole`` derived in one run over everything ends with the same memories, insights and
    graph as ``derived_in_parts``, supersede chains included."""
    run(whole, 0, whole.applied_index)
    for kind in ("l1", "l2", "entity", "relation"):
        assert derived(derived_in_parts)[kind] == derived(whole)[kind], kind
    superseded = [m for m in derived(derived_in_parts)["l1"].values() if m.get("superseded_by")]
    assert superseded, "the move to Seattle and the new car supersede older memories"


def tick(node, cursor: str | None = None) -> dg.SensorResult:
    cluster = InProcessClusterResource.for_node(node)
    with dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral(),
                                 resources={"cluster": cluster}) as context:
        return sensors.log_sensor(context)


@pytest.mark.parametrize("fresh_at", [1, 0])
def test_a_fresh_range_derived_ahead_of_a_backlog_ends_as_in_log_order(
        tmp_path, embedder, monkeypatch, fresh_at):
    """The log sensor's lanes: a fresh range requested while a backlog's chunks wait is derived
    before them (all, or all but the one running). A user's later restatement is then derived
    before the memory it merges into, and the backlog's last chunk comes after the fresh events:
    still the same memories, supersede chains, graph and insights as one run over everything."""
    from conftest import make_settings

    from memorose_dagster.node.node import Node

    monkeypatch.setattr(sensors, "CHUNK_EVENTS", len(SESSIONS[0]))
    monkeypatch.setattr(sensors, "FRESH_TAIL", 1)
    nodes = [Node(make_settings(tmp_path / name), embedder=embedder) for name in ("a", "b")]
    try:
        for n in nodes:
            n.wait_ready()
        lanes, whole = nodes
        sessions = [events_of(session) for session in range(len(SESSIONS))]
        for events in sessions[:2]:  # the backlog: sessions 0 and 1
            lanes.ingest(events)
            whole.ingest(events)
        backlog = tick(lanes)
        for n in nodes:  # session 2 restates the move to Denver of session 0
            n.ingest(sessions[2])
        (fresh,) = tick(lanes, backlog.cursor).run_requests
        assert len(backlog.run_requests) == 2
        order = list(backlog.run_requests)
        order.insert(fresh_at, fresh)
        for request in order:
            run(lanes, 0, 0, request.run_config)
        assert_as_one_run(lanes, whole)
    finally:
        for n in nodes:
            n.close()


def test_only_later_chunks_of_its_backlog_defer_a_users_graph(node):
    """A chunk defers a user with events in later chunks of the same backlog (they derive the
    graph and insights again), never for events after the backlog: a fresh range holding them
    may have run already, and the last chunk would leave the user's graph stale."""
    cluster = InProcessClusterResource.for_node(node)
    first, second, fresh = (node.ingest(events_of(s)) for s in range(3))
    user = {("default", "user_1")}
    def coming(config: LogRange) -> set[tuple[str, str]]:
        answer = users_coming(config, cluster, user)
        return set(answer.ahead | answer.in_backlog)

    assert coming(LogRange(after=0, until=first, horizon=second)) == user
    assert coming(LogRange(after=first, until=second, horizon=second)) == set()
    assert coming(LogRange(after=first, until=second)) == user  # a fresh range
    assert coming(LogRange(after=second, until=fresh, horizon=fresh)) == set()


def test_a_backlog_defers_a_user_whose_next_session_is_past_the_lookahead(tmp_path, embedder):
    """With many users, a user's next session can lie further than the entries a chunk looks
    ahead: the node's last-event index still finds it in a later chunk of the backlog, the graph
    waits for it, and the end is what one run over everything derives."""
    from conftest import make_settings

    from memorose_dagster.node.node import Node

    nodes = [Node(make_settings(tmp_path / name), embedder=embedder) for name in ("a", "b")]
    try:
        for n in nodes:
            n.wait_ready()
        chunked, whole = nodes
        gap = LOOKAHEAD_ENTRIES + 1  # entries of other users between two sessions of user_1
        others = iter(range(2 * gap))
        batches = [events_of(0)] + [events_of(1, f"other_{next(others)}") for _ in range(gap)] \
            + [events_of(1)] + [events_of(1, f"other_{next(others)}") for _ in range(gap)] \
            + [events_of(2)]
        indexes = [(chunked.ingest(b), whole.ingest(b))[0] for b in batches]
        first, second, horizon = indexes[0], indexes[gap + 1], indexes[-1]
        cluster = InProcessClusterResource.for_node(chunked)
        user = {("default", "user_1")}
        coming = users_coming(LogRange(after=first, until=second, horizon=horizon), cluster, user)
        assert user <= coming.in_backlog and not user <= coming.ahead
        assert cluster.continuing(user, indexes[-2], horizon) == user  # its last event
        assert cluster.continuing(user, horizon, horizon + 10) == set()
        deferred = []
        for after, until in [(0, first), (first, second), (second, horizon)]:
            result = run(chunked, after, until, range_run_config(after, until, horizon=horizon))
            deferred.append(meta(result, "memory_graph", "users_deferred"))
        # Both chunks before the last leave user_1's graph to it (the first: though none yet).
        assert deferred == [1, 1, 0]
        assert_as_one_run(chunked, whole)
    finally:
        for n in nodes:
            n.close()


def consolidations(node, events: list[dict]) -> list[tuple[list, list]]:
    """Per user of ``events``: what the consolidator makes over all the user's memories, and
    over the node's candidates for the run."""
    from assets.l1_memories import existing_for
    from assets.selection import by_stream, users_of, with_previous
    from memorose_dagster.memory.consolidate import consolidate

    cluster = InProcessClusterResource.for_node(node)
    out = []
    for tenant, user in users_of(events):
        mine = [e for e in events if e["user_id"] == user]
        streams = by_stream(node.user_records("event", tenant, user,
                                              {e["stream_id"] for e in mine}))
        targets = with_previous(mine, streams)
        every = node.user_records("l1", tenant, user)
        picked = existing_for(cluster, ModelResource(), tenant, user, targets, streams, mine)
        assert [m["id"] for m in picked] == [m["id"] for m in every if m in picked]
        out.append((consolidate(targets, streams, every), consolidate(targets, streams, picked)))
    return out


def test_candidates_find_every_merge_and_supersede_a_full_scan_finds(tmp_path, embedder):
    """Across ranges, a restart of the node and forgetting: the consolidator decides the same
    over the node's candidates as over all of a user's memories."""
    import sys
    from pathlib import Path

    from conftest import make_settings

    from memorose_dagster.node.node import Node
    from memorose_dagster.records import Tombstone

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from history import History

    history = History(1200, 2, seed=5).events()
    settings = make_settings(tmp_path / "node")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    cursor, merges, supersedes = 0, 0, 0
    try:
        forgotten = ""
        for step, start in enumerate(range(0, len(history), 200)):
            until = node.ingest([Event(event_id=new_id(), tenant="default", **e)
                                 for e in history[start:start + 200]])
            events = [r for _, records in node.store.scan_log(cursor, 1000, {"event"}, until)[0]
                      for r in records]
            for full, picked in consolidations(node, events):
                assert [m.to_dict() for m in picked] == [m.to_dict() for m in full]
                merges += sum(len(m.source_event_ids) > 2 for m in full)
                supersedes += sum(bool(m.superseded_by) for m in full)
            run(node, cursor, until)
            cursor = until
            superseders = sorted(m["superseded_by"]
                                 for m in node.user_records("l1", "default", "user_0000")
                                 if m.get("superseded_by"))
            if superseders and not forgotten:  # forget a memory that superseded another
                forgotten = superseders[-1]
                node.commit_derived([Tombstone(tenant="default", target_kind="l1",
                                               target_id=forgotten, reason="forgotten").to_dict()])
            if step == 3:  # a restart: the candidate selection starts with nothing cached
                node.close()
                node = Node(settings, embedder=embedder)
                node.wait_ready()
        assert merges and supersedes, "the history merges and supersedes memories"
        assert forgotten
    finally:
        node.close()


def test_two_near_duplicate_word_sets_always_share_a_prefix_token():
    """The prefix filter behind the merge candidates never misses a pair the consolidator
    would merge (Jaccard >= NEAR_DUPLICATE)."""
    import random

    from memorose_dagster.node.candidates import near_duplicates, prefix

    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(40)]
    checked = 0
    for _ in range(20_000):
        a = frozenset(rng.sample(vocab, rng.randint(4, 25)))
        b = set(a)
        for _ in range(rng.randint(0, 3)):
            if rng.random() < 0.5 and len(b) > 1:
                b.discard(rng.choice(sorted(b)))
            else:
                b.add(rng.choice(vocab))
        if len(b) >= 4 and near_duplicates(a, frozenset(b)):
            checked += 1
            assert set(prefix(a)) & set(prefix(frozenset(b))), (a, b)
    assert checked > 1000
