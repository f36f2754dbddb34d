"""The store's record cache (``log/record_cache.py``) answers what RocksDB holds, never older:
a record changed, forgotten or created by a command, a read that overlapped a write, a snapshot
installed over the store. And through a node: a retrieve after a supersede or a forget sees it,
though the same records were read (and cached) by the retrieve before."""

from __future__ import annotations

import threading

import msgpack
import pytest
from test_current_value import CHAT, JAN_27, JUL_13, derive, said

from memorose_dagster.log import keys
from memorose_dagster.log import record_cache as record_cache_module
from memorose_dagster.log.record_cache import RecordCache
from memorose_dagster.log.store import Store
from memorose_dagster.memory.graph import entity_id
from memorose_dagster.records import Entity, Event, Memory, Tombstone

MEMORY_KEY = keys.target_key("default", "l1", "l1_a")
ENTITY_KEY = keys.derived("entity", "default", entity_id("u", "Maya"))


def memory(content: str, **more: object) -> dict:
    return Memory(id="l1_a", tenant="default", user_id="u", stream_id="s", content=content,
                  source_event_ids=["e1"], **more).to_dict()


def contents(store: Store) -> list:
    return [None if r is None else r["content"] for r in store.get_many([MEMORY_KEY])]


def test_a_record_a_command_changes_is_read_changed(tmp_path):
    store = Store(tmp_path / "db")
    store.apply([memory("Maya lives in Austin")], 1)
    assert contents(store) == ["Maya lives in Austin"]
    hits = store.record_cache.hits
    assert contents(store) == ["Maya lives in Austin"]
    assert store.record_cache.hits == hits + 1  # the second read came from the cache
    store.apply([memory("Maya lives in Austin", superseded_by="l1_b")], 2)
    assert store.get_many([MEMORY_KEY])[0]["superseded_by"] == "l1_b"
    store.record_cache.clear()  # and read from RocksDB, the same
    assert store.get_many([MEMORY_KEY])[0]["superseded_by"] == "l1_b"
    store.close()


def test_what_a_command_writes_is_cached_as_it_lands(tmp_path):
    """The memories, insights and entities a command writes are in the cache once it lands,
    as RocksDB holds them, and its events too while the cache has room; not its vectors, and
    not a key the same command puts then deletes."""
    store = Store(tmp_path / "db")
    cache = store.record_cache
    event = Event(event_id="e1", tenant="default", user_id="u", stream_id="s",
                  content="Maya lives in Austin", timestamp=1.0).to_dict()
    entity = Entity(id=entity_id("u", "Maya"), tenant="default", user_id="u", name="Maya",
                    memory_ids=["l1_a"]).to_dict()
    store.apply([event, memory("Maya lives in Austin"), entity], 1)
    event_key = keys.event("default", "e1")
    assert store.get_many([MEMORY_KEY, ENTITY_KEY, event_key]) == [
        store.get(MEMORY_KEY), store.get(ENTITY_KEY), store.get(event_key)]
    assert (cache.hits, cache.misses) == (3, 0)
    assert store.get_many([event_key])[0]["content"] == "Maya lives in Austin"
    store.apply([memory("Maya moved to Portland"),
                 Tombstone(tenant="default", target_kind="l1", target_id="l1_a",
                           reason="forgotten").to_dict()], 2)
    assert contents(store) == [None] and cache.misses == 1
    store.close()


def test_events_written_never_push_out_what_questions_read(tmp_path):
    store = Store(tmp_path / "db", record_cache=40_000)
    cache = store.record_cache
    store.apply([memory("Maya lives in Austin")], 1)
    held = cache.bytes
    events = [Event(event_id=f"e{i}", tenant="default", user_id="u", stream_id="s",
                    content=f"event number {i} " + "x" * 200, timestamp=1.0).to_dict()
              for i in range(100)]
    for index, start in enumerate(range(0, 100, 10), start=2):
        store.apply(events[start:start + 10], index)
    assert held < cache.bytes <= 40_000
    assert 5 < len(cache) - 1 < 100  # those that found room
    assert contents(store) == ["Maya lives in Austin"] and cache.misses == 0
    store.close()


def test_a_forgotten_record_is_read_as_absent(tmp_path):
    store = Store(tmp_path / "db")
    store.apply([memory("Maya lives in Austin")], 1)
    assert contents(store) == ["Maya lives in Austin"]
    store.apply([Tombstone(tenant="default", target_kind="l1", target_id="l1_a",
                           reason="forgotten").to_dict()], 2)
    assert contents(store) == [None]
    store.close()


def test_an_absent_key_read_before_a_command_creates_it_is_read_present(tmp_path):
    store = Store(tmp_path / "db")
    assert store.get_many([ENTITY_KEY]) == [None]
    assert store.get_many([ENTITY_KEY]) == [None]  # kept as absent
    assert store.record_cache.hits == 1
    store.apply([Entity(id=entity_id("u", "Maya"), tenant="default", user_id="u", name="Maya",
                        memory_ids=["l1_a"]).to_dict()], 1)
    assert store.get_many([ENTITY_KEY])[0]["memory_ids"] == ["l1_a"]
    store.close()


def test_a_read_that_overlaps_a_write_leaves_nothing_in_the_cache(tmp_path):
    store = Store(tmp_path / "db")
    store.apply([memory("Maya lives in Austin")], 1)
    store.record_cache.clear()  # as after a restart: the next read misses

    def read_then_a_write_lands(wanted):
        raw = store.get_raw_many(wanted)  # the value before the write
        store.apply([memory("Maya moved to Portland")], 2)
        return raw

    stale = store.record_cache.get_many([MEMORY_KEY], read_then_a_write_lands)
    assert stale[0]["content"] == "Maya lives in Austin"  # what that read saw, as it saw it
    assert contents(store) == ["Maya moved to Portland"]  # but not kept for the next one
    store.close()


def test_a_snapshot_installed_over_the_store_is_read(tmp_path):
    store, other = Store(tmp_path / "db"), Store(tmp_path / "other")
    store.apply([memory("Maya lives in Austin")], 1)
    other.apply([memory("Maya moved to Portland")], 1)
    assert contents(store) == ["Maya lives in Austin"]
    other.checkpoint(tmp_path / "snapshot")
    store.replace_with(tmp_path / "snapshot")
    assert contents(store) == ["Maya moved to Portland"]
    store.close()
    other.close()


def test_the_cache_keeps_at_most_its_budget_and_nothing_when_off(tmp_path):
    raw = msgpack.packb("x" * 100)
    stored = {key: raw for key in (b"a", b"b", b"c")}
    cost = record_cache_module.PER_STORED_BYTE * len(raw) + record_cache_module.PER_ENTRY
    cache = RecordCache(2 * cost)
    wanted = [b"a", b"b", b"c", b"a"]
    assert cache.get_many(wanted, lambda keys: [stored[k] for k in keys]) == ["x" * 100] * 4
    assert len(cache) == 2 and cache.bytes == 2 * cost
    # a, b and c were read at once, a first: a left to make room
    assert cache.get_many([b"c", b"b"], lambda keys: pytest.fail(f"read {keys}"))
    assert cache.get_many([b"a"], lambda keys: [stored[k] for k in keys])
    assert len(cache) == 2 and cache.bytes == 2 * cost
    store = Store(tmp_path / "db", record_cache=0)
    store.apply([memory("Maya lives in Austin")], 1)
    assert contents(store) == contents(store) == ["Maya lives in Austin"]
    assert len(store.record_cache) == 0 and store.record_cache.hits == 0
    assert not store.record_cache.fill([MEMORY_KEY], store.get_raw_many)
    store.close()


def test_a_fill_keeps_what_fits_evicts_nothing_and_nothing_a_write_overlapped(tmp_path):
    store = Store(tmp_path / "db")
    store.apply([memory("Maya lives in Austin")], 1)
    cache = store.record_cache
    cache.clear()  # as after a restart
    assert cache.fill([MEMORY_KEY], store.get_raw_many) and len(cache) == 1
    assert (cache.hits, cache.misses) == (0, 0)  # a warm-up is not a question
    assert contents(store) == ["Maya lives in Austin"] and cache.hits == 1
    cache.clear()

    def read_then_a_write_lands(wanted):
        raw = store.get_raw_many(wanted)
        store.apply([memory("Maya moved to Portland")], 2)
        return raw

    assert cache.fill([MEMORY_KEY], read_then_a_write_lands)
    # what the fill read is gone; the write left its own value
    assert contents(store) == ["Maya moved to Portland"] and cache.misses == 0
    store.close()
    small = RecordCache(1000)
    raw = msgpack.packb("x" * 100)  # ~700 of the 1000
    assert small.fill([b"a"], lambda keys: [raw])
    assert not small.fill([b"b"], lambda keys: [raw])  # no room: nothing evicted
    assert len(small) == 1 and small.get_many([b"a"], lambda keys: pytest.fail("read"))


def test_a_retrieve_after_a_supersede_and_a_forget_sees_both(node):
    chat = said("maya", [f"Maya: {c}" for c in CHAT], JAN_27 - 86_400 * 60, "bg")
    before = said("maya", ["Maya: I'm living in Austin and it's already hot in January, ha."],
                  JAN_27, "s1")
    derive(node, chat + before)
    question = "Is Maya still in Austin?"
    austin = [r for r in node.retrieve("default", "maya", question, 5)
              if r["layer"] == "L1" and "living in Austin" in r["content"]]
    assert austin and not any(r.get("superseded_by") for r in austin)
    assert len(node.store.record_cache) > 0  # those records are cached now
    derive(node, said("maya", ["Maya: I relocated to Portland in June for my partner's job."],
                      JUL_13, "s2"))
    found = node.retrieve("default", "maya", question, 5)
    assert "Portland" in found[0]["content"]
    again = [r for r in found if r["id"] == austin[0]["id"]]
    assert again and again[0]["superseded_by"]
    node.forgetter.forget("default", "L1", found[0]["id"])
    assert found[0]["id"] not in [r["id"] for r in node.retrieve("default", "maya", question, 5)]


def test_a_reader_beside_a_writer_never_reads_older_than_the_last_ack(tmp_path):
    """A writer acknowledges version after version of one memory; a reader beside it, taking
    the acknowledged version before each read, must never read an older one."""
    store = Store(tmp_path / "db")
    store.apply([memory("v0")], 1)
    acked = [0]
    stale: list[tuple[int, int]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            floor = acked[0]
            (record,) = store.get_many([MEMORY_KEY])
            if int(record["content"][1:]) < floor:
                stale.append((int(record["content"][1:]), floor))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in range(1, 1501):
            store.apply([memory(f"v{version}")], version + 1)
            acked[0] = version
    finally:
        done.set()
        reader.join(timeout=30)
    assert not reader.is_alive() and stale == []
    assert contents(store) == ["v1500"] and store.record_cache.hits > 0
    store.close()
