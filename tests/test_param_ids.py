"""Ids in URL paths and admin query strings are checked like ids in a body: the key separator
(\\x1f), other controls, DEL, C1, U+2028/2029, a blank or an over-long id is a 400 naming the
parameter, before any key is looked up."""

from __future__ import annotations

import http.client
from urllib.parse import quote, urlsplit

import pytest

BAD_IDS = ["a\x1fb", "\x00", "tab\there", "del\x7f", "c1\x85", "line\u2028", "para\u2029",
           " ", "x" * 257]
PATH_ROUTES = [("GET", "/api/v1/events/{}", "event_id"),
               ("DELETE", "/api/v1/events/{}", "event_id"),
               ("GET", "/api/v1/memories/{}", "memory_id"),
               ("DELETE", "/api/v1/memories/{}", "memory_id"),
               ("GET", "/api/v1/users/{}/memories", "user_id"),
               ("GET", "/api/v1/users/{}/graph", "user_id"),
               ("DELETE", "/api/v1/admin/keys/{}", "key_id")]


def refused(response, field: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


def test_path_ids_are_checked_like_body_ids(client):
    for method, template, name in PATH_ROUTES:
        for bad in BAD_IDS:
            refused(client.request(method, template.format(quote(bad, safe=""))), name)


def test_a_good_path_id_still_reaches_the_store(client):
    assert client.get("/api/v1/events/no-such-event").status_code == 404
    assert client.get("/api/v1/users/ü ser/memories").status_code == 404
    made = client.post("/api/v1/events", json={"user_id": "u1", "stream_id": "s1",
                                               "content": "likes tea"})
    assert client.get(f"/api/v1/events/{made.json()['event_id']}").status_code == 200


def test_percent_encoded_separator_is_refused_over_http(served_node):
    """uvicorn decodes %1F into the path parameter: the check sees the decoded id."""
    address = urlsplit(served_node.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    for path, field in [("/api/v1/events/u1%1Fs1", "event_id"),
                        ("/api/v1/users/u1%1F/memories", "user_id"),
                        ("/api/v1/memories/m%0A", "memory_id"),
                        ("/api/v1/events/%E2%80%A8", "event_id")]:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 400, (path, body)
        assert f'"field":"{field}"'.encode() in body, body
    conn.close()


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/admin/records?kind=event&user_id={}", "user_id"),
    ("/api/v1/admin/records?kind=event&user_id=u1&tenant={}", "tenant"),
    ("/api/v1/admin/records?kind=event&user_id=u1&stream_id=s1&stream_id={}", "stream_id"),
    ("/api/v1/admin/events?from_ms=0&to_ms=9&after_tenant={}&after_id=x", "after_tenant"),
    ("/api/v1/admin/events?from_ms=0&to_ms=9&after_tenant=t&after_id={}", "after_id"),
    ("/api/v1/admin/lake/records?kind=event&tenant={}", "tenant"),
    ("/api/v1/users/u1/memories?cursor={}", "cursor"),
])
def test_query_ids_are_checked_like_body_ids(client, path, field):
    for bad in BAD_IDS:
        refused(client.get(path.format(quote(bad, safe=""))), field)


def test_a_separator_in_a_user_id_reaches_no_other_user(client):
    client.post("/api/v1/events", json={"user_id": "u1", "stream_id": "s1",
                                        "content": "private to u1"})
    ok = client.get("/api/v1/admin/records", params={"kind": "event", "user_id": "u1"})
    assert len(ok.json()["records"]) == 1
    refused(client.get("/api/v1/admin/records", params={"kind": "event", "user_id": "u1\x1f"}),
            "user_id")
    assert client.get("/api/v1/admin/records", params={"kind": "event"}).json()["error"][
        "field"] == "user_id"
