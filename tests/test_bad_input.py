"""Bad input gets a 4xx with a JSON error naming the field, and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.ids import new_id
from memorose_dagster.node.node import Node

GOOD = {"user_id": "u1", "stream_id": "s1", "content": "hello there"}


def applied(node: Node) -> int:
    return node.store.applied_index


@pytest.mark.parametrize(("body", "field"), [
    ({"stream_id": "s1", "content": "x"}, "user_id"),
    ({"user_id": "u1", "content": "x"}, "stream_id"),
    ({"user_id": "u1", "stream_id": "s1"}, "content"),
    ({**GOOD, "user_id": ""}, "user_id"),
    ({**GOOD, "user_id": "   "}, "user_id"),
    ({**GOOD, "stream_id": "a\x1fb"}, "stream_id"),
    ({**GOOD, "content": ""}, "content"),
    ({**GOOD, "user_id": 12}, "user_id"),
    ({**GOOD, "content": ["list"]}, "content"),
    ({**GOOD, "metadata": "not an object"}, "metadata"),
    ({**GOOD, "timestamp": "yesterday-ish"}, "timestamp"),
    ({**GOOD, "surprise": 1}, "surprise"),
])
def test_bad_event_names_the_field_and_stores_nothing(client, node, body, field):
    before = applied(node)
    response = client.post("/api/v1/events", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field
    assert field in error["message"]
    assert applied(node) == before


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b"null"])
def test_malformed_json(client, node, raw):
    before = applied(node)
    response = client.post("/api/v1/events", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert applied(node) == before


def test_batch_is_all_or_nothing(client, node):
    before = applied(node)
    events = [GOOD] * 5 + [{**GOOD, "content": 5}] + [GOOD] * 3
    response = client.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "events.5.content"
    assert applied(node) == before
    assert not node.has_user("default", "u1")


def test_empty_batch_rejected(client):
    response = client.post("/api/v1/events/batch", json={"events": []})
    assert response.status_code == 400 and response.json()["error"]["field"] == "events"


@pytest.fixture
def small_node(tmp_path: Path, embedder):
    settings = make_settings(tmp_path / "small", max_body_bytes=4096, max_batch=3,
                             max_content_chars=100)
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        yield node, client
    node.close()


def test_limits(small_node):
    node, client = small_node
    before = applied(node)
    huge = client.post("/api/v1/events", json={**GOOD, "content": "x" * 5000})
    assert huge.status_code == 413 and huge.json()["error"]["limit"] == 4096
    long = client.post("/api/v1/events", json={**GOOD, "content": "y" * 101})
    assert long.status_code == 400 and long.json()["error"]["field"] == "content"
    batch = client.post("/api/v1/events/batch", json={"events": [GOOD] * 4})
    assert batch.status_code == 400 and batch.json()["error"]["field"] == "events"
    assert "limit of 3" in batch.json()["error"]["message"]
    assert applied(node) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "u1", "query": "x", "top_k": 0}, "top_k"),
    ({"user_id": "u1", "query": "x", "top_k": 101}, "top_k"),
    ({"user_id": "u1", "query": "x", "top_k": "5"}, "top_k"),
    ({"user_id": "u1", "query": ""}, "query"),
    ({"query": "x"}, "user_id"),
    ({"user_id": "u1", "query": "x", "layers": ["L9"]}, "layers.0"),
])
def test_bad_retrieve(client, body, field):
    client.post("/api/v1/events", json=GOOD)
    response = client.post("/api/v1/retrieve", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_unknown_user_and_event(client):
    response = client.post("/api/v1/retrieve", json={"user_id": "nobody", "query": "x"})
    assert response.status_code == 404 and response.json()["error"]["field"] == "user_id"
    missing = client.get("/api/v1/events/01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_query_syntax_cannot_break_search(client):
    client.post("/api/v1/events", json={**GOOD, "content": "AND OR NOT title:foo"})
    for query in ['"unbalanced', "title:foo AND (", "*", "NOT", "++--~~^^"]:
        response = client.post("/api/v1/retrieve", json={"user_id": "u1", "query": query})
        assert response.status_code == 200, (query, response.text)


def test_unknown_route_and_method(client):
    assert client.get("/api/v1/nope").json()["error"]["code"] == "not_found"
    response = client.get("/api/v1/events")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_resent_batch_with_client_ids_is_stored_once(client, node):
    events = [{**GOOD, "event_id": new_id(), "content": f"fact {i}"} for i in range(3)]
    first = client.post("/api/v1/events/batch", json={"events": events})
    assert first.status_code == 201
    ids = [e["event_id"] for e in events]
    assert first.json()["event_ids"] == ids
    again = client.post("/api/v1/events/batch", json={"events": events})
    assert again.status_code == 201 and again.json()["event_ids"] == ids
    assert sorted(node.store.user_event_ids("default", "u1")) == sorted(ids)
    assert node.get_event("default", ids[0])["log_index"] == first.json()["log_index"]


def test_client_ids_that_clash_or_are_malformed_are_refused(client, node):
    stored = {**GOOD, "event_id": new_id()}
    assert client.post("/api/v1/events", json=stored).status_code == 201
    before = applied(node)
    clash = client.post("/api/v1/events/batch", json={"events": [
        {**GOOD, "event_id": new_id()}, {**stored, "content": "something else"}]})
    assert clash.status_code == 409
    assert clash.json()["error"]["field"] == "events.1.event_id"
    twice = client.post("/api/v1/events/batch", json={"events": [stored, stored]})
    assert twice.status_code == 400 and twice.json()["error"]["field"] == "events"
    bad = client.post("/api/v1/events", json={**GOOD, "event_id": "not-a-ulid"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "event_id"
    assert applied(node) == before
