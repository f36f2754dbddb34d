"""The state machine never raises on a committed command: a command it cannot apply is skipped
the same way on every replica (the applied index moves on, the rejection is recorded), the
admin commit refuses a malformed record before it reaches the log, the indexer never retries
one bad record forever, and a resent event id with other content is refused by the state
machine itself, all or nothing."""

from __future__ import annotations

import json
import math

import pytest
from conftest import make_settings
from rocksdict import Options, Rdict
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.errors import Conflict, InvalidInput
from memorose_dagster.ids import new_id
from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.node.node import Node
from memorose_dagster.records import Event, Memory, Vector, pack

BAD_L1 = {"kind": "l1", "id": 5, "tenant": [], "user_id": {}, "stream_id": 1, "content": 2,
          "source_event_ids": "x"}
BAD_VECTOR = {"kind": "vector", "tenant": "default", "record_id": "x", "layer": "L1",
              "model": "m", "values": "AAAA"}


def event(content: str = "hello", user: str = "u", tenant: str = "default") -> dict:
    return Event(event_id=new_id(), tenant=tenant, user_id=user, stream_id="s",
                 content=content, timestamp=1.0).to_dict()


def memory(**changes: object) -> dict:
    good = Memory(id="l1_a", tenant="default", user_id="u", stream_id="s", content="a fact",
                  source_event_ids=["e1"]).to_dict()
    return {**good, **changes}


@pytest.fixture
def quick_node(tmp_path, embedder):
    n = Node(make_settings(tmp_path / "n", commit_timeout=3.0), embedder=embedder)
    n.wait_ready()
    yield n
    n.close()


@pytest.mark.parametrize(("record", "field"), [
    (BAD_L1, "records.0.id"),
    (BAD_VECTOR, "records.0.values"),
    ({**BAD_VECTOR, "values": "AAAAAA=="}, "records.0.values"),  # 4 bytes: ok; layer below
    (memory(id="a\x1fb"), "records.0.id"),
    (memory(tenant=""), "records.0.tenant"),
    ({k: v for k, v in memory().items() if k != "user_id"}, "records.0.user_id"),
    (memory(source_event_ids=["e1", 7]), "records.0.source_event_ids"),
    (memory(importance="high"), "records.0.importance"),
    (memory(valid_from=True), "records.0.valid_from"),
    ({"kind": "nope", "id": "x"}, "records.0.kind"),
])
def test_a_malformed_admin_commit_is_refused_naming_the_field(quick_node, record, field):
    if record.get("values") == "AAAAAA==":
        record = {**record, "layer": "L9"}
        field = "records.0.layer"
    with TestClient(create_app(node=quick_node)) as client:
        before = quick_node.applied_index
        response = client.post("/api/v1/admin/commit", json={"records": [record]})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
        assert quick_node.applied_index == before
        ok = client.post("/api/v1/events", json={"user_id": "u", "stream_id": "s",
                                                  "content": "still writable"})
        assert ok.status_code == 201, ok.text


def test_a_non_finite_float_is_refused(quick_node):
    body = json.dumps({"records": [memory(importance=math.nan)]})  # Python's json allows NaN
    with TestClient(create_app(node=quick_node)) as client:
        response = client.post("/api/v1/admin/commit", content=body,
                               headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "records.0.importance"


def test_the_store_skips_a_command_it_cannot_apply_and_records_why(tmp_path):
    store = Store(tmp_path / "db")
    bad = [[BAD_L1], [{**BAD_VECTOR, "values": b"abc"}], "not a list", [1, 2], None,
           [{"kind": "nope"}], [{"no": "kind"}], [memory(), memory(tenant="a\x1fb")],
           [{**event(), "metadata": {"x": math.inf}}], [event(), [event()]]]
    for index, command in enumerate(bad, start=1):
        outcome = store.apply(command, index)
        assert outcome is not None and outcome.records == [] and outcome.rejected, command
        assert store.applied_index == index
        assert store.get(keys.rejected(index))["reason"] == outcome.rejected
    assert list(store.records(keys.derived_prefix("l1", "default"))) == []
    good = [event(), memory()]
    outcome = store.apply(good, len(bad) + 1)
    assert [r["kind"] for r in outcome.records] == ["event", "l1"] and not outcome.rejected
    assert store.get(keys.rejected(len(bad) + 1)) is None


@pytest.mark.parametrize("payload", [b"\xc1garbage", b"", pack([event()])[:-3],
                                     pack({"kind": "event"}), pack([event()]) + b"\x00"])
def test_an_undecodable_payload_is_skipped(tmp_path, payload):
    store = Store(tmp_path / "db")
    outcome = store.apply_payload(payload, 1)
    assert outcome.rejected and store.applied_index == 1
    assert store.apply_payload(payload, 1) is None  # replay: decided once, recorded once
    assert store.apply_payload(pack([event()]), 2).records


def test_a_garbage_raft_entry_leaves_the_node_committing_even_after_restart(tmp_path, embedder):
    settings = make_settings(tmp_path / "n", commit_timeout=3.0)
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    try:
        outcome = node.log.apply_batch(b"\xc1garbage", sync=True, timeout=3)
        assert outcome["rejected"] and outcome["clashes"] == []
        assert node.store.get(keys.rejected(outcome["log_index"])) is not None
        index = node.ingest([Event(**{k: v for k, v in event("after garbage").items()
                                      if k != "kind"})])
        assert index > outcome["log_index"]
    finally:
        node.close()
    again = Node(settings, embedder=embedder)  # the journal replays the garbage entry
    try:
        again.wait_ready(timeout=15)
        assert again.ingest([Event(**{k: v for k, v in event("after restart").items()
                                      if k != "kind"})]) > index
    finally:
        again.close()


def _raw_put(path, entries: dict[bytes, bytes]) -> None:
    """Write into a closed store as an older release would have: no validation at all."""
    opts = Options(raw_mode=True)
    db = Rdict(str(path), opts)
    for key, value in entries.items():
        db[key] = value
    db.close()


def test_the_indexer_skips_records_it_cannot_index(tmp_path):
    store = Store(tmp_path / "db")
    target = event("a target for the vectors")
    store.apply([target], 1)
    wrong_dim = Vector(tenant="default", record_id=target["event_id"], layer="L0", model="m",
                       values=b"\x00" * 8).to_dict()  # valid for the log, not for a 4-d index
    store.apply([wrong_dim], 2)
    store.close()
    torn = {**wrong_dim, "values": b"\x00\x00\x00", "log_index": 3}  # committed unchecked
    bad_event = {"kind": "event", "tenant": "default", "event_id": "E1", "log_index": 4}
    _raw_put(tmp_path / "db", {
        keys.vector("default", "other"): pack({**torn, "record_id": "other"}),
        keys.seq(3): pack([keys.vector("default", "other")]),
        keys.event("default", "E1"): pack(bad_event),
        keys.seq(4): pack([keys.event("default", "E1")]),
        keys.APPLIED: (4).to_bytes(8, "big")})
    store = Store(tmp_path / "db")
    indexer = Indexer(store, FullTextIndex(tmp_path / "tantivy"),
                      VectorIndex(tmp_path / "lancedb", 4, "m"), tmp_path / "watermark")
    try:
        later = event("the word after the bad ones")
        store.apply([later], 5)
        assert indexer.catch_up() >= 1
        assert indexer.indexed == 5
        assert indexer.skipped == 3
        assert [h.id for h in indexer.fulltext.search("word after", "default", "u", 5)] \
            == [later["event_id"]]
        assert indexer.vectors.count() == 0
    finally:
        indexer.fulltext.close()
        store.close()


def test_a_resent_event_id_with_other_content_is_refused_by_the_state_machine(quick_node):
    first = Event(**{k: v for k, v in event("the original").items() if k != "kind"})
    quick_node.submit([first.to_dict()])
    other = event("an innocent bystander")
    clash = {**first.to_dict(), "content": "rewritten behind the API's back"}
    with pytest.raises(Conflict) as raised:
        quick_node.submit([other, clash])  # no API pre-check on this path
    assert raised.value.details["field"] == "events.1.event_id"
    assert quick_node.get_event("default", first.event_id)["content"] == "the original"
    assert quick_node.find_event("default", other["event_id"]) is None  # all or nothing
    rejected = quick_node.store.get(keys.rejected(raised.value.details["log_index"]))
    assert rejected["clashes"] == [1]
    same = quick_node.submit([first.to_dict()])  # the same event again: a harmless resend
    assert same > raised.value.details["log_index"]


def test_an_event_the_state_machine_refuses_is_a_400_naming_the_field(quick_node):
    # The API refuses NaN at the edge (naming the key); past the edge, the state machine
    # refuses it too, naming the field of the command it could not apply.
    body = b'{"user_id": "u", "stream_id": "s", "content": "x", "metadata": {"score": NaN}}'
    with TestClient(create_app(node=quick_node)) as client:
        response = client.post("/api/v1/events", content=body,
                               headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "metadata.score"
    event = Event(event_id=new_id(), tenant="default", user_id="u", stream_id="s",
                  content="x", timestamp=1.0, metadata={"score": float("nan")})
    with pytest.raises(InvalidInput) as refused:
        quick_node.ingest([event])
    assert refused.value.details["field"] == "events.0.metadata"
