"""The store's RocksDB keeps its configured block cache and bloom filter across reopens, and a
starting node reads what a retrieve reads into that cache (``Store.warm``): memories, insights,
entities and events, not the vectors."""

from __future__ import annotations

import re
import sys
import threading

import numpy as np
from conftest import make_settings, wait_until

from memorose_dagster.ids import new_id
from memorose_dagster.log import keys
from memorose_dagster.log import store as store_module
from memorose_dagster.log.store import BLOCK_CACHE_BYTES, WARM_PREFIXES, Store
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Memory, Vector
from memorose_dagster.settings import Settings

EVENTS = 3000
WORDS = ["hiking", "Lisbon", "guitar", "sister", "marathon", "pottery", "Austin", "chess"]


def history(n: int) -> list[dict]:
    """``n`` events of ~600 characters (random words: they compress as little as text does),
    one memory per ten, and a vector for each of both."""
    rng = np.random.default_rng(7)
    records: list[dict] = []
    for i in range(n):
        eid = new_id()
        text = " ".join(rng.choice(WORDS, 90)) + f" {i}"
        records.append(Event(event_id=eid, tenant="default", user_id=f"u{i % 5}",
                             stream_id="s", content=text, timestamp=1.0).to_dict())
        records.append(Vector(tenant="default", record_id=eid, layer="L0", model="m",
                              values=rng.random(384, dtype=np.float32).tobytes()).to_dict())
        if i % 10 == 0:
            mid = f"l1_{i}"
            records.append(Memory(id=mid, tenant="default", user_id=f"u{i % 5}",
                                  stream_id="s", content=text[:200],
                                  source_event_ids=[eid]).to_dict())
            records.append(Vector(tenant="default", record_id=mid, layer="L1", model="m",
                                  values=rng.random(384, dtype=np.float32).tobytes()).to_dict())
    return records


def filled(path, n: int = EVENTS) -> None:
    store = Store(path)
    records = history(n)
    for index, start in enumerate(range(0, len(records), 500), start=1):
        outcome = store.apply(records[start:start + 500], index)
        assert outcome is not None and not outcome.rejected
    store.flush()
    store.close()


def table_property(store: Store, name: str) -> int:
    found = re.search(rf"{re.escape(name)}=(\d+)",
                      store.rocksdb_property("rocksdb.aggregated-table-properties"))
    assert found, name
    return int(found.group(1))


def cache_usage(store: Store) -> int:
    return int(store.rocksdb_property("rocksdb.block-cache-usage"))


def test_a_reopened_store_keeps_its_block_cache_and_bloom_filter(tmp_path):
    Store(tmp_path / "db").close()  # created: rocksdict saved its OPTIONS
    store = Store(tmp_path / "db")
    try:
        # Given only the database's options, rocksdict reopened an existing store with an 8 MB
        # cache of its own and no bloom filter.
        capacity = store.rocksdb_property("rocksdb.block-cache-capacity")
        assert capacity == str(BLOCK_CACHE_BYTES)
        store.apply([Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                           content="a fact", timestamp=1.0).to_dict()], 1)
        store.flush()
        assert table_property(store, "filter block size") > 0
    finally:
        store.close()


def test_warm_reads_the_retrieve_records_into_the_block_cache_and_not_the_vectors(tmp_path):
    filled(tmp_path / "db")
    store = Store(tmp_path / "db")
    try:
        before = cache_usage(store)
        warmth = store.warm()
        grown = cache_usage(store) - before
        assert warmth.cache_bytes == cache_usage(store)
        wanted = sum(1 for prefix, _ in WARM_PREFIXES for _ in store.iter_prefix(prefix))
        assert wanted == EVENTS + EVENTS // 10
        assert (warmth.keys, warmth.full, warmth.stopped) == (wanted, False, False)
        # and decoded into the record cache: a retrieve's first reads of them are hits
        assert warmth.records == len(store.record_cache) == wanted
        some = [key for prefix, _ in WARM_PREFIXES for key, _ in store.iter_prefix(prefix)][::50]
        assert all(store.get_many(some)) and store.record_cache.misses == 0
        vectors = sum(len(k) + len(v) for k, v in store.iter_prefix(b"v\x1f"))
        read = sum(len(k) + len(v) for prefix, _ in WARM_PREFIXES
                   for k, v in store.iter_prefix(prefix))
        # What it read (~2.5 MB) is in the cache now; the vectors (~5 MB) are not.
        assert vectors > 1.5 * read
        assert read * 0.8 < grown < read * 1.5
    finally:
        store.close()


def test_warm_stops_at_its_share_of_the_cache_and_when_asked(tmp_path, monkeypatch):
    filled(tmp_path / "db")
    store = Store(tmp_path / "db")
    try:
        wanted = EVENTS + EVENTS // 10  # counted above; counting here would fill the cache
        monkeypatch.setattr(store_module, "WARM_SHARE",
                            (cache_usage(store) + 256 * 1024) / BLOCK_CACHE_BYTES)
        warmth = store.warm()
        assert warmth.full and not warmth.stopped and 0 < warmth.keys < wanted
        monkeypatch.undo()
        stop = threading.Event()
        stop.set()
        warmth = store.warm(stop=stop)
        assert warmth.stopped and not warmth.full and warmth.keys < wanted
    finally:
        store.close()


def test_a_warm_up_decodes_what_fits_in_the_record_cache_and_warms_the_rest(tmp_path):
    filled(tmp_path / "db")
    store = Store(tmp_path / "db", record_cache=1024 * 1024)  # ~700 of the 3,300 records
    try:
        warmth = store.warm()
        assert warmth.keys == EVENTS + EVENTS // 10 and not warmth.full
        assert 300 < warmth.records == len(store.record_cache) < EVENTS // 2
        assert store.record_cache.bytes <= 1024 * 1024  # it evicted nothing to get there
        memory_keys = [key for key, _ in store.iter_prefix(keys.derived_kind_prefix("l1"))]
        assert all(store.get_many(memory_keys)) and store.record_cache.misses == 0
    finally:
        store.close()


def test_a_warm_up_gives_way_while_a_question_is_answered(tmp_path):
    filled(tmp_path / "db")
    store = Store(tmp_path / "db")
    asking = threading.Event()
    asking.set()
    looks: list[int] = []

    def give_way() -> bool:
        looks.append(len(store.record_cache))
        return asking.is_set()

    done: list = []
    warmer = threading.Thread(target=lambda: done.append(store.warm(give_way=give_way)))
    try:
        warmer.start()
        wait_until(lambda: len(looks) >= 20, 10, what="the warm-up looking again and again")
        # it waits after its first batch, reading nothing more while the question runs
        assert not done and len(set(looks[1:])) == 1 and looks[-1] < EVENTS // 10
        asking.clear()
        warmer.join(timeout=30)
        assert done[0].keys == EVENTS + EVENTS // 10 == done[0].records
    finally:
        asking.clear()
        warmer.join(timeout=30)
        store.close()


def test_a_warm_up_cut_short_by_its_share_kept_the_newest_events(tmp_path, monkeypatch):
    filled(tmp_path / "db")
    store = Store(tmp_path / "db")
    try:
        event_keys = [key for key, _ in store.iter_prefix(keys.EVENTS_PREFIX)]  # oldest first
        event_bytes = sum(len(v) for _, v in store.iter_prefix(keys.EVENTS_PREFIX))
        store.close()
        store_module._BLOCK_CACHE.set_capacity(1)  # empties the shared cache  # noqa: SLF001
        store_module._BLOCK_CACHE.set_capacity(BLOCK_CACHE_BYTES)  # noqa: SLF001
        store = Store(tmp_path / "db")
        monkeypatch.setattr(store_module, "WARM_SHARE",
                            (cache_usage(store) + event_bytes // 3) / BLOCK_CACHE_BYTES)
        warmth = store.warm()
        assert warmth.full and warmth.keys < EVENTS
        before = cache_usage(store)
        store.get_raw_many(event_keys[-300:])  # the newest: in the cache already
        newest = cache_usage(store) - before
        store.get_raw_many(event_keys[:300])  # the oldest: read from the files now
        oldest = cache_usage(store) - before - newest
        assert newest == 0 and oldest > 100_000
    finally:
        store.close()


def test_a_restarted_node_warms_its_store_unless_told_not_to(tmp_path, embedder, monkeypatch):
    home = tmp_path / "n"
    node = Node(make_settings(home, commit_timeout=5.0), embedder=embedder)
    try:
        node.wait_ready()
        for user in ("u", "v"):  # v writes last
            events = [Event(event_id=new_id(), tenant="default", user_id=user, stream_id="s",
                            content=f"fact number {i}", timestamp=1.0) for i in range(25)]
            node.ingest(events)
            # The vectors of the first ten, committed as the pipeline commits them.
            node.submit([Vector(tenant="default", record_id=e.event_id, layer="L0",
                                model=embedder.name, values=vector.tobytes()).to_dict()
                         for e, vector in zip(events[:10], embedder.embed(
                             [e.content for e in events[:10]]), strict=True)])
        assert node.store.recent_users() == [("default", "v"), ("default", "u")]
    finally:
        node.close()
    switch_interval = sys.getswitchinterval()
    for warm in (True, False):
        node = Node(make_settings(home, commit_timeout=5.0, warm_store=warm), embedder=embedder)
        try:
            assert (node.warmer is not None) is warm
            if warm:
                node.warmer.join(timeout=30)
                assert sys.getswitchinterval() == switch_interval  # given back
                assert node.warmth is not None and node.warmth.keys == 50
                assert node.warmth.records == 50 and node.health()["caches"] == "warm"
                assert node.warm_users == 2
                assert node.indexer.vectors.memory_rows[0] == 20  # read before any question
            else:
                assert node.warmth is None and node.warm_users == 0
                assert node.health()["caches"] == "cold"
                assert node.indexer.vectors.memory_rows[0] == 0
        finally:
            node.close()
    monkeypatch.setenv("MEMOROSE_WARM_STORE", "0")
    assert Settings.from_env(check=False).warm_store is False
    monkeypatch.setenv("MEMOROSE_WARM_STORE", "1")
    assert Settings.from_env(check=False).warm_store is True

