"""Batch bodies read in an ingest worker process (``api.batches``) give exactly what the node's
own process gives: the same log command, the same ids' order, the same refusals; a worker that
dies loses no batch."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from api import create_app
from api.batches import OFFLOAD_BYTES, prepare
from api.schemas import EventBatchIn
from memorose_dagster.ids import id_time_ms
from memorose_dagster.records import Event, event_record, pack
from tests.conftest import wait_until

NOW = 1_767_225_600.123456  # 2026-01-01, a receive time with microseconds


def big(events: list[dict]) -> bytes:
    """A batch body over OFFLOAD_BYTES (padded with whitespace, which JSON allows)."""
    body = json.dumps({"events": events}).encode()
    return body + b" " * max(0, OFFLOAD_BYTES + 1 - len(body))


def conversation(n: int, **extra: object) -> list[dict]:
    return [{"user_id": f"u{i % 3}", "stream_id": "s1", "content": f"turn {i}: ünïcode ✓ " * 3,
             "metadata": {"turn": i, "tags": ["a", "b"], "score": 0.5}, **extra}
            for i in range(n)]


@pytest.fixture
def apps(node):
    """Two apps on one node: batches read in a worker, and read in the node's process."""
    with TestClient(create_app(replace(node.settings, ingest_workers=1), node)) as offload, \
            TestClient(create_app(replace(node.settings, ingest_workers=0), node)) as inline:
        yield offload, inline


def test_the_command_is_the_one_the_node_makes_itself():
    """Ids made by the node are filled into placeholders: the bytes equal those of the events
    packed whole, as ``Node.ingest`` packs them."""
    events = conversation(40)
    events[3]["event_id"] = "01JGZZZZZZZZZZZZZZZZZZZZZZ"
    events[7]["timestamp"] = "2025-06-01T12:00:00"
    events[9]["content_type"] = "application/x-note"
    raw = bytearray(json.dumps({"events": events}).encode())
    prepared = prepare(raw, "acme", NOW, 1000, 65536)
    payload, ids = prepared.command(int(NOW * 1000))
    assert len(ids) == 40 and ids[3] == "01JGZZZZZZZZZZZZZZZZZZZZZZ"
    assert [i for i in ids if i != ids[3]] == sorted(i for i in ids if i != ids[3])
    # made at NOW, or just after ids this process made later (ids never go back)
    assert min(id_time_ms(i) for i in ids if i != ids[3]) >= int(NOW * 1000)
    batch = EventBatchIn.model_validate(json.loads(raw)).events
    expected = [event_record(Event(
        event_id=event_id, tenant="acme", user_id=b.user_id, stream_id=b.stream_id,
        content=b.content, timestamp=b.timestamp.timestamp() if b.timestamp else NOW,
        content_type=b.content_type, metadata=b.metadata))
        for b, event_id in zip(batch, ids, strict=True)]
    assert payload == pack(expected)
    assert [i for i, _ in prepared.sent] == [3]


def test_a_worker_answers_as_the_nodes_process_does(apps, node):
    offload, inline = apps
    pids = offload.app.state.ingest.start()
    assert pids and os.getpid() not in pids
    stored = []
    for client in (offload, inline):
        resp = client.post("/api/v1/events/batch", content=big(conversation(300)))
        assert resp.status_code == 201, resp.text
        stored.append([node.get_event("default", i) for i in resp.json()["event_ids"]])
    drop = ("event_id", "log_index", "timestamp")
    assert ([{k: v for k, v in e.items() if k not in drop} for e in stored[0]]
            == [{k: v for k, v in e.items() if k not in drop} for e in stored[1]])
    assert offload.app.state.ingest.pids() == pids  # the same worker read it


BAD = {
    "malformed JSON": b'{"events": [' + b" " * OFFLOAD_BYTES,
    "not an object": b"[" + b" " * OFFLOAD_BYTES + b"]",
    "a missing field": big([{"user_id": "u1", "content": "no stream"}]),
    "an unknown field": big([{"user_id": "u1", "stream_id": "s", "content": "x", "extra": 1}]),
    "NaN in metadata": big(conversation(5)).replace(b'"score": 0.5', b'"score": NaN', 1),
    "an integer msgpack cannot carry": big(conversation(5)).replace(
        b'"turn": 4', b'"turn": 99999999999999999999999', 1),
    "a lone surrogate": big(conversation(5)).replace(b'"a"', b'"\\ud800"', 1),
    "deep nesting": big([{"user_id": "u1", "stream_id": "s", "content": "x",
                          "metadata": json.loads('{"a":' * 40 + "1" + "}" * 40)}]),
    "over the batch limit": big(conversation(1001)),
    "content over the limit": big([{"user_id": "u", "stream_id": "s", "content": "x" * 70000}]),
    "an id twice": big([{"user_id": "u", "stream_id": "s", "content": "x",
                         "event_id": "01JGZZZZZZZZZZZZZZZZZZZZZZ"}] * 2),
    "a blank user": big([{"user_id": "  ", "stream_id": "s", "content": "x"}]),
    "a time past 9999": big([{"user_id": "u", "stream_id": "s", "content": "x",
                              "timestamp": "9999-12-31T23:59:59-05:00"}]),
}


@pytest.mark.parametrize("what", list(BAD))
def test_a_refusal_from_a_worker_is_the_nodes_own(apps, node, what):
    offload, inline = apps
    before = node.applied_index
    answers = [client.post("/api/v1/events/batch", content=BAD[what],
                           headers={"content-type": "application/json"}) for client in apps]
    assert answers[0].status_code in (400, 413), answers[0].text
    assert answers[0].status_code == answers[1].status_code
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["error"]["message"]
    assert node.applied_index == before  # nothing proposed


def test_resends_through_a_worker(apps, node):
    offload, _ = apps
    events = conversation(200)
    events[5]["event_id"] = "01JH0000000000000000000005"
    first = offload.post("/api/v1/events/batch", content=big(events))
    assert first.status_code == 201, first.text
    again = offload.post("/api/v1/events/batch", content=big(events))
    assert again.status_code == 201  # the same event under its id: nothing new stored
    assert again.json()["event_ids"][5] == "01JH0000000000000000000005"
    events[5]["content"] = "something else"
    clash = offload.post("/api/v1/events/batch", content=big(events))
    assert clash.status_code == 409
    assert clash.json()["error"]["field"] == "events.5.event_id"
    assert node.get_event("default", "01JH0000000000000000000005")["content"] == \
        conversation(200)[5]["content"]


def test_a_dead_worker_loses_no_batch(apps, node):
    offload, _ = apps
    pool = offload.app.state.ingest
    [pid] = pool.start()
    os.kill(pid, signal.SIGKILL)  # a worker this test's app started
    made = []
    for _ in range(3):
        resp = offload.post("/api/v1/events/batch", content=big(conversation(150)))
        assert resp.status_code == 201, resp.text
        made += resp.json()["event_ids"]
    assert all(node.get_event("default", i) for i in made)
    assert made == sorted(made)  # one source of ids, in the order made
    wait_until(lambda: pool.pids(), what="a new worker")  # started in the background
    assert pid not in pool.pids()
    read = pool.offloaded
    assert offload.post("/api/v1/events/batch", content=big(conversation(150))).status_code == 201
    assert pool.offloaded == read + 1  # and it reads the next batch


def test_no_batch_waits_for_a_starting_worker(apps):
    """Until a worker answers, batches are read in the node's process; the first large one
    starts the workers in the background."""
    offload, _ = apps
    pool = offload.app.state.ingest
    assert pool.pids() == [] and pool.offloaded == 0
    assert offload.post("/api/v1/events/batch", content=big(conversation(150))).status_code == 201
    assert pool.offloaded == 0
    wait_until(lambda: pool.pids(), what="the worker to answer")
    assert offload.post("/api/v1/events/batch", content=big(conversation(150))).status_code == 201
    assert pool.offloaded == 1


def test_a_hung_worker_is_killed_and_its_batch_read_here(apps, node):
    offload, _ = apps
    pool = offload.app.state.ingest
    pool.timeout = 1.0
    [pid] = pool.start()
    os.kill(pid, signal.SIGSTOP)  # a worker this test's app started: it stops answering
    resp = offload.post("/api/v1/events/batch", content=big(conversation(150)))
    assert resp.status_code == 201, resp.text
    assert all(node.get_event("default", i) for i in resp.json()["event_ids"])
    assert pool.offloaded == 0
    wait_until(lambda: pool.pids(), what="a new worker")
    assert pid not in pool.pids()
    assert offload.post("/api/v1/events/batch", content=big(conversation(150))).status_code == 201
    assert pool.offloaded == 1
