"""The Python client against a live node over real HTTP (uvicorn in a subprocess)."""

from __future__ import annotations

import httpx
import pytest
from conftest import free_port

from memorose_client import MemoroseAPIError, MemoroseClient, MemoroseConnectionError


def test_client_round_trip(live_node):
    client = MemoroseClient(live_node.url)
    acked = client.ingest("user_123", "session_1", "User loves hiking",
                          metadata={"source": "app"})
    assert acked["log_index"] > 0
    ids = client.ingest_batch([
        {"user_id": "user_123", "stream_id": "session_1", "content": "Allergic to peanuts"},
        {"user_id": "user_123", "stream_id": "session_2", "content": "Works as a nurse"},
    ])
    assert len(ids) == 2
    results = client.retrieve(user_id="user_123", stream_id="session_1",
                              query="outdoor activities hiking", top_k=5)
    assert results[0]["id"] == acked["event_id"]
    assert results[0]["provenance"][0]["metadata"] == {"source": "app"}
    assert client.get_event(ids[1])["content"] == "Works as a nurse"
    assert client.cluster_status()["role"] == "leader"


def test_client_errors_are_clear(live_node):
    client = MemoroseClient(live_node.url)
    with pytest.raises(MemoroseAPIError) as info:
        client.retrieve(user_id="user_123", query="x", top_k=1000)
    assert info.value.status == 400 and info.value.code == "invalid_input"
    assert "top_k" in str(info.value)
    with pytest.raises(MemoroseAPIError) as missing:
        client.get_event("nope")
    assert missing.value.status == 404


def test_client_fails_over_to_a_reachable_node(live_node):
    dead = f"http://127.0.0.1:{free_port()}"
    client = MemoroseClient([dead, live_node.url])
    assert client.health()["status"] == "ok"
    with pytest.raises(MemoroseConnectionError):
        MemoroseClient(dead).health()


class LoseFirstResponse(httpx.HTTPTransport):
    """A real transport whose first answer never reaches the client (the node did store it)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        if len(self.statuses) == 1:
            response.read()
            raise httpx.ReadTimeout("response lost", request=request)
        return response


def test_a_batch_resent_after_a_lost_response_is_stored_once(live_node):
    transport = LoseFirstResponse()
    client = MemoroseClient([live_node.url, live_node.url], transport=transport)
    ids = client.ingest_batch([{"user_id": "resend", "stream_id": "s", "content": f"fact {i}"}
                               for i in range(4)])
    assert transport.statuses == [201, 201] and len(set(ids)) == 4
    for event_id in ids:
        assert client.get_event(event_id)["content"].startswith("fact")
    found = client.retrieve(user_id="resend", query="fact", top_k=20, layers=["L0"])
    assert sorted(r["id"] for r in found) == sorted(ids)
