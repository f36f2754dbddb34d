"""The indexer takes the records the state machine hands over as it applies them, instead of
reading them back from RocksDB: both ways must index the same. Each scenario is applied with the
hand-over and compared with a second indexer that only reads the log, over the same store."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.log.store import Store
from memorose_dagster.node import indexer as indexer_module
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.records import (
    Event,
    Memory,
    Tombstone,
    Vector,
    pack,
    vector_to_bytes,
)

DIM, MODEL, USERS = 8, "test-model", ("ann", "bob")


def make_indexer(root, name: str, store: Store) -> Indexer:
    return Indexer(store, FullTextIndex(root / f"{name}-tantivy"),
                   VectorIndex(root / f"{name}-lancedb", DIM, MODEL), root / f"{name}.mark")


class Scenario:
    """Commands of events, memories (some rewritten), vectors and forgetting, one at a time."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.words: set[str] = set()
        self.events: list[tuple[str, str]] = []  # (user, id)
        self.memories: list[tuple[str, str]] = []
        self.n = 0

    def _word(self) -> str:
        self.n += 1
        word = f"word{self.n}"
        self.words.add(word)
        return word

    def _vector(self, rid: str, layer: str) -> dict[str, Any]:
        values = np.asarray([self.rng.random() for _ in range(DIM)], dtype=np.float32)
        return Vector(tenant="t", record_id=rid, layer=layer, model=MODEL,
                      values=vector_to_bytes(values)).to_dict()

    def command(self) -> list[dict[str, Any]]:
        choice = self.rng.random()
        if choice < 0.4 or not self.events:
            out = []
            for _ in range(self.rng.randint(1, 6)):
                user, eid = self.rng.choice(USERS), f"E{self.n:04d}"
                self.events.append((user, eid))
                out.append(Event(event_id=eid, tenant="t", user_id=user, stream_id="s",
                                 content=f"said {self._word()}", timestamp=1.0).to_dict())
                if self.rng.random() < 0.5:
                    out.append(self._vector(eid, "L0"))
            return out
        if choice < 0.75 or not self.memories:  # a new memory, or a rewrite of one
            if self.memories and self.rng.random() < 0.4:
                user, mid = self.rng.choice(self.memories)
            else:
                user, mid = self.rng.choice(self.events)[0], f"M{self.n:04d}"
                self.memories.append((user, mid))
            memory = Memory(id=mid, tenant="t", user_id=user, stream_id="s",
                            content=f"remembers {self._word()}", source_event_ids=[])
            return [memory.to_dict(), self._vector(mid, "L1")]
        if choice < 0.85:  # a clash: the same event id with other content (rejected)
            user, eid = self.rng.choice(self.events)
            return [Event(event_id=eid, tenant="t", user_id=user, stream_id="s",
                          content="something else", timestamp=1.0).to_dict()]
        kind, pool = ("l1", self.memories) if self.rng.random() < 0.5 else ("event", self.events)
        if not pool:
            return [self._vector(self.events[0][1], "L0")]
        _, target = pool.pop(self.rng.randrange(len(pool)))
        return [Tombstone(tenant="t", target_kind=kind, target_id=target,
                          reason="user request").to_dict()]


PROBES = np.random.default_rng(0).random((3, DIM), dtype=np.float32)


def contents(indexer: Indexer, words: set[str]) -> tuple[Any, ...]:
    """What retrieval can see: per user, the text hits of every word ever written and every
    vector row by its similarity to a few probes, from the index in memory and from the table."""
    hits = {(user, word): sorted((h.id, h.layer) for h in
                                 indexer.fulltext.search(word, "t", user, 500))
            for user in USERS for word in sorted(words)}
    rows = {(user, i, exact): [(h.id, h.layer, round(h.similarity, 5)) for h in
                               indexer.vectors.search(probe, "t", user, 500, exact=exact)]
            for user in USERS for i, probe in enumerate(PROBES) for exact in (False, True)}
    return indexer.fulltext.num_docs(), indexer.vectors.count(), hits, rows


class CountingStore(Store):
    """A store that counts the entries read back from its log (not handed over)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.read_back: list[int] = []

    def scan_log(self, *args: Any, **kwargs: Any):
        entries, scanned_to = super().scan_log(*args, **kwargs)
        self.read_back.append(len(entries))
        return entries, scanned_to


@pytest.fixture
def store(tmp_path):
    store = CountingStore(tmp_path / "rocksdb")
    yield store
    store.close()


def apply(store: Store, indexer: Indexer | None, records: list[dict[str, Any]]) -> None:
    index = store.applied_index + 1
    outcome = store.apply_payload(pack(records), index)
    if indexer is not None:
        indexer.applied(index, outcome)


def compare(tmp_path, store: CountingStore, live: Indexer, scenario: Scenario) -> None:
    live.catch_up()
    assert live.indexed == store.applied_index
    handed = list(store.read_back)
    reference = make_indexer(tmp_path, "reference", store)
    reference.catch_up()
    store.read_back[:] = handed  # what the live indexer read, not the reference
    assert reference.indexed == store.applied_index
    assert contents(live, scenario.words) == contents(reference, scenario.words)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_handed_over_records_index_as_the_log_does(tmp_path, store, seed):
    live = make_indexer(tmp_path, "live", store)
    read = store.read_back
    scenario = Scenario(seed)
    for _ in range(120):
        apply(store, live, scenario.command())
        if scenario.rng.random() < 0.3:  # the indexer sometimes lags several commands
            live.catch_up()
    compare(tmp_path, store, live, scenario)
    assert sum(read) == 0, "every entry was handed over: nothing read back"
    assert scenario.memories and scenario.events


def test_a_missed_hand_over_is_read_back_from_the_log(tmp_path, store):
    live = make_indexer(tmp_path, "live", store)
    read = store.read_back
    scenario = Scenario(4)
    for i in range(60):
        apply(store, None if i % 7 == 3 else live, scenario.command())  # some never handed
        if i % 5 == 0:
            live.catch_up()
    compare(tmp_path, store, live, scenario)
    assert sum(read) > 0


def test_more_than_the_hand_over_holds_is_read_back(tmp_path, store, monkeypatch):
    monkeypatch.setattr(indexer_module, "HANDED_MAX_RECORDS", 10)
    live = make_indexer(tmp_path, "live", store)
    read = store.read_back
    scenario = Scenario(5)
    for _ in range(80):
        apply(store, live, scenario.command())  # no catch-up: the indexer lags all along
    assert live.held <= 10
    compare(tmp_path, store, live, scenario)
    assert sum(read) > 0


def test_after_a_restart_the_gap_is_read_back_then_hand_over_resumes(tmp_path, store):
    scenario = Scenario(6)
    first = make_indexer(tmp_path, "live", store)
    for _ in range(30):
        apply(store, first, scenario.command())
    first.catch_up()
    first.fulltext.close()
    for _ in range(30):  # applied while the indexer is down (a crash before indexing)
        apply(store, None, scenario.command())
    again = make_indexer(tmp_path, "live", store)
    read = store.read_back
    read.clear()
    for _ in range(30):
        apply(store, again, scenario.command())
    again.catch_up()
    assert sum(read) > 0
    read.clear()
    for _ in range(30):
        apply(store, again, scenario.command())
    compare(tmp_path, store, again, scenario)
    assert sum(read) == 0


def test_a_snapshot_install_drops_what_was_handed_over(tmp_path, store):
    live = make_indexer(tmp_path, "live", store)
    scenario = Scenario(7)
    for _ in range(20):
        apply(store, live, scenario.command())
    live.notify(store.applied_index)  # what a snapshot install calls
    assert live.held == 0
    compare(tmp_path, store, live, scenario)


def test_a_crash_between_the_index_commit_and_the_watermark_leaves_no_twin(tmp_path, store):
    """Handed-over events are indexed without first deleting a document of the same id (they
    are new to the store). Read back after a crash that kept the index but not its
    watermark, the same events are indexed again, and replace what is there."""
    scenario = Scenario(8)
    first = make_indexer(tmp_path, "live", store)
    for _ in range(20):
        apply(store, first, scenario.command())
    first.catch_up()
    mark = first.indexed
    for _ in range(20):
        apply(store, first, scenario.command())
    first.catch_up()
    first.fulltext.close()
    (tmp_path / "live.mark").write_text(str(mark))  # the watermark of before the last commits
    again = make_indexer(tmp_path, "live", store)
    for _ in range(20):
        apply(store, again, scenario.command())
    compare(tmp_path, store, again, scenario)
