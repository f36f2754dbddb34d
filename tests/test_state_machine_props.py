"""Property: whatever bytes a committed command holds, the state machine decides from those
bytes alone and never raises; the applied index moves by one per command, two replicas stay
identical, the indexer keeps up, and a valid command afterwards is applied and indexed."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.log.store import Store
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.records import (
    RECORD_TYPES,
    Access,
    Entity,
    Event,
    Insight,
    Memory,
    Relation,
    Tombstone,
    Vector,
    pack,
    vector_to_bytes,
)

DIM, MODEL = 4, "m"
EVENT_IDS = ["E0", "E1", "E2"]  # few ids: vectors, tombstones and clashes find their targets
FIELDS = sorted({f for cls in RECORD_TYPES.values() for f in cls.__dataclass_fields__}
                | {"kind"})
_probe = itertools.count()

leaves = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
          | st.floats() | st.text(max_size=8) | st.binary(max_size=12))
anything = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=6), max_leaves=16)
ids = st.sampled_from(EVENT_IDS)
text = st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=20)
floats = st.floats(min_value=-1e6, max_value=1e6)


def _records() -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of every kind, aimed at a few shared ids."""
    tenant = st.sampled_from(["t", "default"])
    common = {"tenant": tenant, "user_id": st.sampled_from(["u", "w"])}
    kinds = [
        st.builds(Event, event_id=ids, stream_id=st.just("s"), content=text,
                  timestamp=floats, **common),
        st.builds(Memory, id=st.sampled_from(["l1_a", "l1_b"]), stream_id=st.just("s"),
                  content=text, source_event_ids=st.lists(ids, max_size=2),
                  importance=floats, **common),
        st.builds(Insight, id=st.just("l2_a"), content=text,
                  member_ids=st.lists(st.just("l1_a"), max_size=1),
                  source_event_ids=st.lists(ids, max_size=2), **common),
        st.builds(Entity, id=st.just("ent_a"), name=text, **common),
        st.builds(Relation, id=st.just("rel_a"), source=st.just("ent_a"),
                  target=st.just("l1_a"), relation=st.just("mentions"), **common),
        st.builds(Vector, tenant=tenant, record_id=ids, layer=st.sampled_from(["L0", "L1"]),
                  model=st.just(MODEL), values=st.lists(floats, min_size=DIM, max_size=DIM)
                  .map(lambda v: vector_to_bytes(np.asarray(v)))),
        st.builds(Tombstone, tenant=tenant, target_kind=st.sampled_from(["event", "l1"]),
                  target_id=ids | st.just("l1_a"), reason=st.sampled_from(["", "forgotten"])),
        st.builds(Access, record_id=ids, target_kind=st.just("event"),
                  count=st.integers(0, 5), last_access=floats, **common),
    ]
    return st.one_of(kinds).map(lambda r: r.to_dict())


valid = _records()


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with one field replaced by anything, or dropped."""
    record = draw(valid)
    name = draw(st.sampled_from(sorted(record)))
    if draw(st.booleans()):
        record.pop(name)
    else:
        record[name] = draw(anything)
    return record


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    payload = pack(draw(st.lists(valid, min_size=1, max_size=3)))
    return payload[:draw(st.integers(0, len(payload) - 1))]


commands = st.one_of(
    anything.map(pack),                                               # any msgpack shape
    st.lists(st.dictionaries(st.sampled_from(FIELDS), anything), max_size=3).map(pack),
    st.lists(valid | mutated(), min_size=1, max_size=4).map(pack),    # wrong types here and there
    st.lists(valid, min_size=1, max_size=4).map(pack),                # fine, or clashing ids
    truncated(),                                                      # cut short
    st.binary(max_size=40),                                           # noise
)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("machine")
    a, b = Store(root / "a"), Store(root / "b")
    indexer = Indexer(a, FullTextIndex(root / "tantivy"), VectorIndex(root / "lancedb", DIM,
                                                                      MODEL), root / "mark")
    yield a, b, indexer
    indexer.fulltext.close()
    a.close()
    b.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(commands, min_size=1, max_size=4))
def test_no_committed_command_breaks_the_state_machine_or_the_indexer(replicas, payloads):
    a, b, indexer = replicas
    for payload in payloads:
        index = a.applied_index + 1
        first = a.apply_payload(payload, index)
        second = b.apply_payload(payload, index)
        assert a.applied_index == b.applied_index == index
        assert first == second
        event("clash" if first.clashes else "rejected" if first.rejected else "applied")
    assert a.digest() == b.digest()

    word = f"probe{next(_probe)}"
    probe = Event(event_id=word.upper(), tenant="p", user_id="probe", stream_id="s",
                  content=f"a valid {word} afterwards", timestamp=1.0).to_dict()
    outcome = a.apply_payload(pack([probe]), a.applied_index + 1)
    assert outcome is not None and not outcome.rejected and len(outcome.records) == 1
    b.apply_payload(pack([probe]), b.applied_index + 1)
    indexer.catch_up()
    assert indexer.indexed == a.applied_index
    assert [h.id for h in indexer.fulltext.search(word, "p", "probe", 3)] == [probe["event_id"]]
