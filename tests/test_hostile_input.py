"""Hostile input gets a clean 4xx naming the field and stores nothing."""

from __future__ import annotations

import pytest

GOOD = {"user_id": "u1", "stream_id": "s1", "content": "hello there"}


def refused(response, field: str, status: int = 400, code: str = "invalid_input") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["field"] == field, error


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
