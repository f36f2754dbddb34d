"""Hostile bodies get a clean 4xx naming the field, store nothing, and keep the connection open.

Python's json module accepts what JSON does not (NaN, Infinity, 1e400 read as inf), and msgpack
and UTF-8 refuse what JSON carries (integers past 64 bits, lone surrogates): each of these was
once stored with 201 and then broke every read of it with a 500.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from memorose_dagster.ids import new_id

GOOD = {"user_id": "u1", "stream_id": "s1", "content": "hello there"}
JSON = {"content-type": "application/json"}
BODY_ROUTES = ["/api/v1/events", "/api/v1/events/batch", "/api/v1/retrieve", "/api/v1/context",
               "/api/v1/forget", "/api/v1/forget/confirm", "/api/v1/admin/commit",
               "/api/v1/admin/cluster/members"]


def raw(body: object) -> bytes:
    """JSON as Python writes it: NaN and Infinity bare, lone surrogates as \\u escapes."""
    return json.dumps(body).encode()


def post_raw(client, path: str, body: bytes, headers: dict[str, str] | None = None):
    return client.post(path, content=body, headers=JSON if headers is None else headers)


def refused(response, field: str, status: int = 400, code: str = "invalid_input") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["field"] == field, error


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_metadata(depth: int) -> bytes:
    """An event whose metadata nests ``depth`` objects (json.dumps recurses, so built by hand)."""
    return raw(GOOD)[:-1] + b', "metadata": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_by_path(client, node, number):
    before = node.store.applied_index
    single = post_raw(client, "/api/v1/events", raw({**GOOD, "metadata": {"score": number}}))
    refused(single, "metadata.score")
    batch = post_raw(client, "/api/v1/events/batch", raw({"events": [
        GOOD, {**GOOD, "metadata": {"x": [1, number]}}]}))
    refused(batch, "events.1.metadata.x.1")
    assert node.store.applied_index == before


def test_a_float_beyond_double_range_is_refused(client, node):
    before = node.store.applied_index
    body = b'{"user_id": "u1", "stream_id": "s1", "content": "x", "metadata": {"big": 1e400}}'
    refused(post_raw(client, "/api/v1/events", body), "metadata.big")
    assert node.store.applied_index == before


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_past_64_bits_are_refused(client, node, number):
    before = node.store.applied_index
    refused(client.post("/api/v1/events", json={**GOOD, "metadata": {"n": number}}),
            "metadata.n")
    commit = client.post("/api/v1/admin/commit", json={"records": [
        {"kind": "l1", "id": "m1", "tenant": "default", "user_id": "u1", "stream_id": "s1",
         "content": "x", "source_event_ids": [], "created_at": number}]})
    refused(commit, "records.0.created_at")
    assert node.store.applied_index == before


def test_an_integer_too_long_to_parse_is_refused(client, node):
    body = b'{"user_id": "u1", "stream_id": "s1", "content": "x", "metadata": {"n": %s}}' % (
        b"9" * 5000)
    refused(post_raw(client, "/api/v1/events", body), "metadata.n")


def test_edge_values_are_stored_and_read_back(client):
    """What the refusals leave in: 64-bit limits, the largest double, 30 levels, astral text."""
    metadata = {"max": 2**64 - 1, "min": -(2**63), "huge": 1.7976931348623157e308,
                "deep": nested(28), "emoji": "\U0001f600 café"}
    response = client.post("/api/v1/events", json={**GOOD, "metadata": metadata})
    assert response.status_code == 201, response.text
    event_id = response.json()["event_id"]
    assert client.get(f"/api/v1/events/{event_id}").json()["metadata"] == metadata
    assert client.get("/api/v1/admin/log").status_code == 200
    records = client.get("/api/v1/admin/records", params={"kind": "event", "user_id": "u1"})
    assert records.json()["records"][0]["metadata"] == metadata
    hits = client.post("/api/v1/retrieve", json={"user_id": "u1", "query": "hello"}).json()
    assert hits["results"][0]["provenance"][0]["metadata"] == metadata


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_nested_100000_deep_is_refused_on_every_route(client, node, path):
    before = node.store.applied_index
    refused(post_raw(client, path, b"[" * 100_000 + b"]" * 100_000), "")
    refused(post_raw(client, path, b"[" * 100_000), "")
    assert node.store.applied_index == before


@pytest.mark.parametrize(("depth", "field"), [
    (32, "metadata" + ".a" * 31),  # level 33, counting the event as 1
    (1000, ""),  # past what the JSON parser itself will nest: no path to name
])
def test_metadata_nested_too_deep_is_refused(client, node, depth, field):
    before = node.store.applied_index
    response = post_raw(client, "/api/v1/events", deep_metadata(depth))
    refused(response, field)
    assert "deeper than 32" in response.json()["error"]["message"]
    assert node.store.applied_index == before


def test_metadata_nested_to_the_limit_is_kept(client):
    response = post_raw(client, "/api/v1/events", deep_metadata(31))
    assert response.status_code == 201, response.text
    event = client.get(f"/api/v1/events/{response.json()['event_id']}").json()
    assert json.dumps(event["metadata"]).count("{") == 31


@pytest.mark.parametrize(("body", "field"), [
    ({**GOOD, "metadata": {"k": "a\ud800b"}}, "metadata.k"),
    ({**GOOD, "metadata": {"k\udfff": 1}}, "metadata"),
    ({**GOOD, "content": "\udc00"}, "content"),
    ({**GOOD, "user_id": "u\ud800"}, "user_id"),
    ({**GOOD, "stream_id": "\ud83d"}, "stream_id"),
])
def test_lone_surrogates_are_refused(client, node, body, field):
    before = node.store.applied_index
    refused(post_raw(client, "/api/v1/events", raw(body)), field)
    assert node.store.applied_index == before


def test_lone_surrogates_are_refused_in_queries_and_commits(client, node):
    client.post("/api/v1/events", json=GOOD)
    before = node.store.applied_index
    query = post_raw(client, "/api/v1/retrieve", raw({"user_id": "u1", "query": "x\ud800"}))
    refused(query, "query")
    memory = {"kind": "l1", "id": "m1", "tenant": "default", "user_id": "u1",
              "stream_id": "s1", "content": "bad \udbff text", "source_event_ids": []}
    refused(post_raw(client, "/api/v1/admin/commit", raw({"records": [memory]})),
            "records.0.content")
    assert node.store.applied_index == before


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00", "0001-01-01T00:00:00Z",
                                       "1969-12-31T00:00:00Z", -86400,
                                       "9999-12-31T23:59:59-14:00"])
def test_timestamps_outside_1970_to_9999_are_refused(client, node, timestamp):
    before = node.store.applied_index
    refused(client.post("/api/v1/events", json={**GOOD, "timestamp": timestamp}), "timestamp")
    batch = client.post("/api/v1/events/batch", json={"events": [
        {**GOOD, "timestamp": timestamp}]})
    refused(batch, "events.0.timestamp")
    assert node.store.applied_index == before


def test_timestamps_at_the_edges_of_the_range_are_kept(client):
    for timestamp, seconds in [("1970-01-01T00:00:00Z", 0.0),
                               ("9999-12-31T23:59:59Z", 253402300799.0)]:
        response = client.post("/api/v1/events", json={**GOOD, "timestamp": timestamp})
        assert response.status_code == 201, response.text
        event = client.get(f"/api/v1/events/{response.json()['event_id']}").json()
        assert event["timestamp"] == seconds


@pytest.mark.parametrize("value", ["yes", "true", 1, "1", None])
def test_consistent_must_be_a_json_boolean(client, value):
    client.post("/api/v1/events", json=GOOD)
    response = client.post("/api/v1/retrieve",
                           json={"user_id": "u1", "query": "hello", "consistent": value})
    refused(response, "consistent")


def test_consistent_query_parameter_must_be_a_boolean(client):
    event_id = client.post("/api/v1/events", json=GOOD).json()["event_id"]
    for value in ("1", "true", "0", "false"):
        response = client.get(f"/api/v1/events/{event_id}", params={"consistent": value})
        assert response.status_code == 200, (value, response.text)
    refused(client.get(f"/api/v1/events/{event_id}", params={"consistent": "yes"}),
            "consistent")


def test_event_ids_beyond_the_ulid_range_are_refused(client, node):
    before = node.store.applied_index
    for event_id in ("8" + "0" * 25, "Z" * 26):
        refused(client.post("/api/v1/events", json={**GOOD, "event_id": event_id}),
                "event_id")
    assert node.store.applied_index == before
    largest = client.post("/api/v1/events", json={**GOOD, "event_id": "7" + "Z" * 25})
    assert largest.status_code == 201, largest.text
    assert largest.json()["event_id"] == "7" + "Z" * 25


@pytest.mark.parametrize("bad", ["a\x7fb", "a\x85b", "a\x9fb", "a\u2028b", "a\u2029b",
                                 "\u2028"])
def test_ids_refuse_del_c1_controls_and_line_separators(client, node, bad):
    before = node.store.applied_index
    refused(client.post("/api/v1/events", json={**GOOD, "user_id": bad}), "user_id")
    refused(client.post("/api/v1/events", json={**GOOD, "stream_id": bad}), "stream_id")
    assert node.store.applied_index == before


def test_ids_keep_ordinary_unicode(client, node):
    for user_id in ("josé", "用户", "a b", "\U0001f600", "a/b:c"):
        response = client.post("/api/v1/events", json={**GOOD, "user_id": user_id})
        assert response.status_code == 201, (user_id, response.text)
        assert node.has_user("default", user_id)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml",
                                          "text/json"])
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_non_json_media_types_get_415(client, node, path, content_type):
    before = node.store.applied_index
    body = {"/api/v1/events": GOOD, "/api/v1/events/batch": {"events": [GOOD]}}.get(path, {})
    response = post_raw(client, path, raw(body), {"content-type": content_type})
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert content_type.split(";")[0] in error["message"]
    assert "application/json" in error["message"]
    assert node.store.applied_index == before


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.memorose+json",
                                          None])
def test_json_media_types_and_none_are_accepted(client, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    response = post_raw(client, "/api/v1/events", raw(GOOD), headers)
    assert response.status_code == 201, response.text


HOSTILE = [
    raw({**GOOD, "metadata": {"x": float("nan")}}),
    b"[" * 100_000,
    deep_metadata(1000),
    raw({**GOOD, "metadata": {"n": 2**64}}),
    raw({**GOOD, "content": "\ud800"}),
    raw({**GOOD, "timestamp": "0001-01-01T00:00:00"}),
]


def test_hostile_bodies_keep_the_connection_alive(served_node):
    """Over real HTTP: each refusal is a 400 on the same keep-alive connection, which then
    still serves a good request (a 500 would have closed it)."""
    url = urlsplit(served_node.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.connect()
        sock = conn.sock
        for body in HOSTILE:
            conn.request("POST", "/api/v1/events", body=body, headers=JSON)
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == 400, payload
            assert response.getheader("connection") != "close"
            assert conn.sock is sock
        conn.request("POST", "/api/v1/events", body=raw(GOOD), headers=JSON)
        response = conn.getresponse()
        assert response.status == 201, response.read()
        assert conn.sock is sock
    finally:
        conn.close()


def test_a_resend_with_64_bit_metadata_is_still_idempotent(client):
    event = {**GOOD, "event_id": new_id(), "metadata": {"max": 2**64 - 1}}
    first = client.post("/api/v1/events", json=event)
    again = client.post("/api/v1/events", json=event)
    assert first.status_code == again.status_code == 201
    assert first.json()["event_id"] == again.json()["event_id"]
