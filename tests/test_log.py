"""The state machine and its RocksDB layout: deterministic, idempotent, compactable."""

from __future__ import annotations

import tarfile
import threading

from conftest import make_settings, wait_until

from memorose_dagster.ids import id_floor, new_id
from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Tombstone, Vector, unpack


def event(i: int, user: str = "u") -> dict:
    return Event(event_id=new_id(), tenant="t", user_id=user, stream_id="s",
                 content=f"event {i}", timestamp=1.0 + i).to_dict()


def test_apply_is_idempotent_by_log_index(tmp_path):
    store = Store(tmp_path / "db")
    first = [event(1), event(2)]
    applied = store.apply(first, 5).records
    assert [r["log_index"] for r in applied] == [5, 5]
    digest = store.digest()
    assert store.apply(first, 5) is None  # journal replay after a restart
    assert store.apply([event(3)], 4) is None
    assert store.digest() == digest and store.applied_index == 5


def test_same_commands_give_identical_replicas(tmp_path):
    commands = [[event(i), event(i + 100, user="v")] for i in range(20)]
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    for index, command in enumerate(commands, start=1):
        a.apply(command, index)
        b.apply(command, index)
    assert a.digest() == b.digest()
    b.apply([event(99)], 21)
    assert a.digest() != b.digest()


def test_tombstone_removes_event_listing_and_vector(tmp_path):
    store = Store(tmp_path / "db")
    ev = event(1)
    vec = Vector(tenant="t", record_id=ev["event_id"], layer="L0", model="m",
                 values=b"\x00" * 8).to_dict()
    store.apply([ev, vec], 1)
    assert list(store.user_event_ids("t", "u")) == [ev["event_id"]]
    store.apply([Tombstone(tenant="t", target_kind="event", target_id=ev["event_id"],
                           reason="user request").to_dict()], 2)
    assert store.get(keys.event("t", ev["event_id"])) is None
    assert store.get(keys.vector("t", ev["event_id"])) is None
    assert list(store.user_event_ids("t", "u")) == []
    assert store.get(keys.tombstone("t", "event", ev["event_id"]))["reason"] == "user request"


def test_read_log_pages_from_a_cursor(tmp_path):
    store = Store(tmp_path / "db")
    for index in range(1, 11):
        store.apply([event(index)], index * 2)  # Raft indexes with gaps (no-ops, membership)
    page = store.scan_log(0, 4)[0]
    assert [index for index, _ in page] == [2, 4, 6, 8]
    rest = store.scan_log(page[-1][0], 100)[0]
    assert [index for index, _ in rest] == [10, 12, 14, 16, 18, 20]
    assert store.scan_log(20, 10)[0] == []
    assert rest[0][1][0]["content"] == "event 5"


def test_snapshot_then_restart_keeps_everything(tmp_path, embedder):
    settings = make_settings(tmp_path / "n")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    ids = []
    for i in range(30):
        ev = Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                   content=f"snapshot fact {i}", timestamp=float(i))
        node.ingest([ev])
        ids.append(ev.event_id)
    snapshot = settings.home / "raft" / "snapshot.tar"
    node.log.forceLogCompaction()
    wait_until(snapshot.exists, what="snapshot written")
    wait_until(lambda: node.log.getStatus()["log_len"] < 30, what="log compacted")
    digest = node.store.digest()
    node.close()

    again = Node(settings, embedder=embedder)
    again.wait_ready()
    try:
        assert all(again.get_event("default", i) for i in ids)
        wait_until(lambda: again.indexer.indexed >= again.store.applied_index)
        hits = again.retrieve("default", "u", "snapshot fact", top_k=50)
        assert {h["id"] for h in hits} == set(ids)
        assert again.store.digest() != "" and digest
    finally:
        again.close()


def test_a_record_rewritten_in_one_indexing_page_is_indexed_once(tmp_path, embedder):
    from memorose_dagster.records import Insight, vector_to_bytes

    node = Node(make_settings(tmp_path / "n"), embedder=embedder)
    node.wait_ready()
    try:
        node.indexer.stop()  # let several commands pile up into one indexing page
        values = vector_to_bytes(embedder.embed(["gardening"])[0])
        for members in (["a"], ["a", "b"], ["a", "b", "c"]):
            insight = Insight(id="l2_same", tenant="default", user_id="u", topic="gardening",
                              content=f"gardening with {len(members)}", member_ids=members,
                              source_event_ids=[])
            vector = Vector(tenant="default", record_id="l2_same", layer="L2",
                            model=embedder.name, values=values)
            node.submit([insight.to_dict(), vector.to_dict()], wait_indexed=False)
        assert node.indexer.catch_up() >= 3
        assert node.indexer.fulltext.num_docs() == 1
        assert node.indexer.vectors.count() == 1
    finally:
        node.close()


def test_a_command_with_nothing_left_to_index_is_still_acknowledged(tmp_path, embedder):
    from memorose_dagster.records import Memory

    node = Node(make_settings(tmp_path / "n", commit_timeout=5.0), embedder=embedder)
    node.wait_ready()
    try:
        memory = Memory(id="l1_x", tenant="default", user_id="u", stream_id="s",
                        content="forgotten for good", source_event_ids=["e"])
        node.submit([memory.to_dict()])
        node.submit([Tombstone(tenant="default", target_kind="l1", target_id="l1_x",
                               reason="forgotten").to_dict()])
        index = node.submit([memory.to_dict()])  # a re-derivation: skipped by the store
        assert node.indexer.indexed >= index
        assert node.get_record("default", "L1", "l1_x") is None
        assert node.indexer.fulltext.search("forgotten", "default", "u", 5) == []
    finally:
        node.close()


def test_per_user_listings_follow_writes_and_tombstones(tmp_path):
    from memorose_dagster.records import Access, Memory

    store = Store(tmp_path / "db")
    def memory(mid, user):
        return Memory(id=mid, tenant="t", user_id=user, stream_id="s", content=mid,
                      source_event_ids=["e"]).to_dict()

    store.apply([event(1, user="ann"), event(2, user="bob"), event(3, user="ann/x"),
                 memory("m1", "ann"), memory("m2", "bob"), memory("m3", "ann")], 1)
    store.apply([Access(tenant="t", user_id="ann", record_id="m1", target_kind="l1", count=2,
                        last_access=5.0).to_dict()], 2)
    assert store.users() == [("t", "ann"), ("t", "ann/x"), ("t", "bob")]
    assert sorted(m["id"] for m in store.derived_for_user("l1", "t", "ann")) == ["m1", "m3"]
    assert [a["count"] for a in store.derived_for_user("access", "t", "ann")] == [2]
    store.apply([Tombstone(tenant="t", target_kind="l1", target_id="m1").to_dict()], 3)
    assert [m["id"] for m in store.derived_for_user("l1", "t", "ann")] == ["m3"]
    assert store.derived_for_user("access", "t", "ann") == []
    assert [m["id"] for m in store.derived_for_user("l1", "t", "bob")] == ["m2"]


def test_an_event_is_written_once_and_a_forgotten_one_stays_gone(tmp_path):
    store = Store(tmp_path / "db")
    ev = event(1)
    store.apply([ev], 1)
    assert store.apply([ev], 2).records == []  # a resend changes nothing
    clash = store.apply([{**ev, "content": "rewritten"}], 3)  # another event, same id: refused
    assert clash.records == [] and clash.clashes == (0,)
    assert store.get(keys.event("t", ev["event_id"])) == {**ev, "log_index": 1}
    store.apply([Tombstone(tenant="t", target_kind="event", target_id=ev["event_id"],
                           reason="forgotten").to_dict()], 4)
    assert store.apply([ev], 5).records == []
    assert store.get(keys.event("t", ev["event_id"])) is None
    assert list(store.user_event_ids("t", "u")) == []


def test_a_read_during_a_snapshot_install_is_a_503(node, monkeypatch, tmp_path):
    from starlette.testclient import TestClient

    from api import create_app
    from memorose_dagster.log import store as store_module

    event_id = new_id()
    with TestClient(create_app(node=node)) as client:
        assert client.post("/api/v1/events", json={"event_id": event_id, "user_id": "u",
                                                   "stream_id": "s", "content": "hi there"}
                           ).status_code == 201
        node.store.checkpoint(tmp_path / "snapshot")
        seen = []
        copy = store_module.shutil.copytree

        def copy_while_reading(source, target):
            seen.append(client.get(f"/api/v1/events/{event_id}"))  # the store is closed now
            return copy(source, target)

        monkeypatch.setattr(store_module.shutil, "copytree", copy_while_reading)
        node.store.replace_with(tmp_path / "snapshot")
        (during,) = seen
        assert during.status_code == 503 and during.json()["error"]["code"] == "unavailable"
        assert client.get(f"/api/v1/events/{event_id}").json()["content"] == "hi there"


def test_events_of_a_time_range_are_a_range_scan_in_pages(tmp_path):
    store = Store(tmp_path / "db")
    day, hour = 1_700_006_400_000, 3_600_000  # 2023-11-15 00:00 UTC, in ms
    made = {(tenant, offset): Event(event_id=id_floor(day + offset)[:-1] + tenant[-1].upper(),
                                    tenant=tenant, user_id="u", stream_id="s", content="x",
                                    timestamp=1.0).to_dict()
            for offset in (-hour, 0, 5 * hour, 24 * hour - 1, 24 * hour) for tenant in ("a", "b")}
    store.apply(list(made.values()), 1)
    made = {key: event["event_id"] for key, event in made.items()}
    inside = [made[(t, o)] for t in ("a", "b") for o in (0, 5 * hour, 24 * hour - 1)]
    page, after = store.events_between(day, day + 24 * hour, limit=4)
    assert [e["event_id"] for e in page] == inside[:4] and after == ("b", inside[3])
    rest, end = store.events_between(day, day + 24 * hour, limit=4, after=after)
    assert [e["event_id"] for e in rest] == inside[4:] and end is None


def test_admin_events_refuses_a_bad_range(node):
    from starlette.testclient import TestClient

    from api import create_app

    with TestClient(create_app(node=node)) as client:
        for params in ({"from_ms": 5, "to_ms": 5}, {"from_ms": "x", "to_ms": 9},
                       {"from_ms": 1, "to_ms": 9, "after_id": "01"}):
            response = client.get("/api/v1/admin/events", params=params)
            assert response.status_code == 400, params
            assert response.json()["error"]["field"] in ("from_ms", "after_id")
        assert client.get("/api/v1/admin/events", params={"from_ms": 0, "to_ms": 9}
                          ).json() == {"events": [], "next": None}


def test_a_snapshot_is_written_while_commits_go_on(tmp_path, embedder, monkeypatch):
    from memorose_dagster.log import replicated

    def dump_index(path):
        with tarfile.open(path) as tar:
            return unpack(tar.extractfile("raft.msgpack").read())["last"][1]

    def ingest(n):
        for i in range(n):
            node.ingest([Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                               content=f"fact {i}", timestamp=float(i))])

    settings = make_settings(tmp_path / "n")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    dump = settings.home / "raft" / "snapshot.tar"
    try:
        ingest(5)
        node.log.forceLogCompaction()  # the first snapshot is written in the tick itself
        wait_until(dump.exists, what="first snapshot")
        first = dump_index(dump)
        release, writing = threading.Event(), threading.Event()
        write = replicated.write_snapshot

        def slow_write(path, meta, checkpoint):
            writing.set()
            assert release.wait(30)
            write(path, meta, checkpoint)

        monkeypatch.setattr(replicated, "write_snapshot", slow_write)
        ingest(5)
        taken_at = node.store.applied_index
        node.log.forceLogCompaction()
        wait_until(writing.is_set, what="snapshot writer started")
        ingest(20)  # commits go on while the snapshot is being written
        assert node.store.applied_index >= taken_at + 20
        assert dump_index(dump) == first  # the dump is still the last complete one
        log_len = node.log.getStatus()["log_len"]
        release.set()
        wait_until(lambda: dump_index(dump) == taken_at, what="new snapshot in place")
        wait_until(lambda: node.log.getStatus()["log_len"] < log_len, what="log compacted")
        assert not list(dump.parent.glob("*.writing")) and not list(dump.parent.glob(".snap*"))
    finally:
        release.set()
        node.close()
