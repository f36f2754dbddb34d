"""The HTTP API end to end on a real node (Raft, RocksDB, Tantivy, LanceDB) via TestClient."""

from __future__ import annotations

import re

from memorose_dagster.node.node import Node


def ingest(client, user="user_123", stream="session_1", content="User loves hiking", **extra):
    response = client.post("/api/v1/events", json={"user_id": user, "stream_id": stream,
                                                   "content": content, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def retrieve(client, user, query, **extra):
    response = client.post("/api/v1/retrieve", json={"user_id": user, "query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_ingest_then_retrieve_echoes_metadata_in_provenance(client):
    meta = {"source": "chat", "turn": 7, "nested": {"tags": ["a", "b"]}}
    acked = ingest(client, metadata=meta, timestamp="2023-05-08T13:56:00Z")
    assert acked["log_index"] > 0 and len(acked["event_id"]) == 26

    results = retrieve(client, "user_123", "hiking", top_k=5)  # right after the ack
    assert [r["id"] for r in results] == [acked["event_id"]]
    hit = results[0]
    assert hit["layer"] == "L0" and hit["content"] == "User loves hiking" and hit["score"] > 0
    assert hit["provenance"] == [{"event_id": acked["event_id"], "stream_id": "session_1",
                                  "timestamp": 1683554160.0, "metadata": meta}]


def test_get_event_returns_it_as_sent(client):
    acked = ingest(client, content="Dinner with Ana", metadata={"k": "v"}, content_type="note")
    event = client.get(f"/api/v1/events/{acked['event_id']}").json()
    assert event["content"] == "Dinner with Ana" and event["metadata"] == {"k": "v"}
    assert event["content_type"] == "note" and event["log_index"] == acked["log_index"]
    assert event["user_id"] == "user_123" and event["stream_id"] == "session_1"


def test_batch_returns_ids_in_order_sent_and_all_are_stored(client):
    events = [{"user_id": "u", "stream_id": "s", "content": f"fact number {i}",
               "metadata": {"i": i}} for i in range(25)]
    body = client.post("/api/v1/events/batch", json={"events": events}).json()
    assert len(body["event_ids"]) == 25 and len(set(body["event_ids"])) == 25
    for i, event_id in enumerate(body["event_ids"]):
        assert client.get(f"/api/v1/events/{event_id}").json()["metadata"] == {"i": i}


def test_user_isolation(client):
    ingest(client, user="alice", content="alice secret garden password")
    ingest(client, user="bob", content="bob secret garden plans")
    for user in ("alice", "bob"):
        results = retrieve(client, user, "secret garden", top_k=10)
        assert results and all(r["user_id"] == user for r in results)
        assert all(p["event_id"] for r in results for p in r["provenance"])


def test_stream_filter(client):
    ingest(client, stream="work", content="quarterly report due friday")
    ingest(client, stream="home", content="report the broken heater")
    results = retrieve(client, "user_123", "report", stream_id="work")
    assert [r["stream_id"] for r in results] == ["work"]


def test_layers_filter(client):
    ingest(client, content="likes green tea")
    assert retrieve(client, "user_123", "tea", layers=["L0"])
    assert retrieve(client, "user_123", "tea", layers=["L1"]) == []


def test_health_status_and_openapi(client, node: Node):
    assert client.get("/health").json()["status"] == "ok"
    status = client.get("/api/v1/cluster/status").json()
    assert status["role"] == "leader" and status["term"] >= 1
    assert status["commit_index"] >= status["applied_index"] >= 0
    assert status["node_id"] == node.settings.name
    doc = client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/events", "/api/v1/events/batch", "/api/v1/retrieve",
                 "/api/v1/events/{event_id}", "/api/v1/cluster/status", "/health"):
        assert path in doc["paths"]
    routes = {re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", r.path) for r in client.app.routes}
    assert routes - {"/api/v1/openapi.json"} <= set(doc["paths"])  # every route documented
    methods = {"get", "post", "delete"}
    for path, item in doc["paths"].items():
        for method, op in ((m, o) for m, o in item.items() if m in methods):
            responses = set(op["responses"])
            if method == "post" or "requestBody" in op or any(
                    p["in"] == "query" for p in op.get("parameters", [])):
                assert "400" in responses, (method, path)
            if "requestBody" in op:
                assert {"413", "415"} <= responses, (method, path)
    for path in ("/api/v1/events", "/api/v1/events/batch"):
        assert "409" in doc["paths"][path]["post"]["responses"]
    assert doc["components"]["schemas"]["EventIn"]["required"] == [
        "user_id", "stream_id", "content"]


def test_admin_log_and_commit_round_trip(client):
    acked = ingest(client, content="moved to Lisbon")
    log = client.get("/api/v1/admin/log", params={"after": 0, "limit": 100}).json()
    events = [r for e in log["entries"] for r in e["records"] if r["kind"] == "event"]
    assert [e["event_id"] for e in events] == [acked["event_id"]]
    memory = {"kind": "l1", "id": "mem-1", "tenant": "default", "user_id": "user_123",
              "stream_id": "session_1", "content": "Lives in Lisbon",
              "source_event_ids": [acked["event_id"]]}
    committed = client.post("/api/v1/admin/commit", json={"records": [memory]})
    assert committed.status_code == 201, committed.text
    results = retrieve(client, "user_123", "Lisbon", layers=["L1"])
    assert results[0]["id"] == "mem-1" and results[0]["layer"] == "L1"
    assert results[0]["provenance"][0]["event_id"] == acked["event_id"]
    after = client.get("/api/v1/admin/log", params={"after": log["next_cursor"]}).json()
    assert any(r["kind"] == "l1" for e in after["entries"] for r in e["records"])


def test_admin_log_counts_say_how_many_events_each_entry_holds(client):
    batch = client.post("/api/v1/events/batch", json={"events": [
        {"user_id": "u", "stream_id": "s", "content": f"fact {i}"} for i in range(3)]}).json()
    single = ingest(client)
    memory = {"kind": "l1", "id": "mem-1", "tenant": "default", "user_id": "user_123",
              "stream_id": "session_1", "content": "Loves hiking",
              "source_event_ids": [single["event_id"]]}
    derived = client.post("/api/v1/admin/commit", json={"records": [memory]}).json()

    def counts(**params):
        return client.get("/api/v1/admin/log/counts", params={"after": 0, **params}).json()

    events = counts(kinds="event")
    assert events["entries"] == [[batch["log_index"], 3], [single["log_index"], 1]]
    assert events["next_cursor"] == derived["log_index"] == events["applied_index"]
    assert counts(kinds="event", until=batch["log_index"])["entries"] == [[batch["log_index"], 3]]
    assert counts(kinds="event", limit=1)["next_cursor"] == batch["log_index"]
    assert [n for _, n in counts()["entries"]][-1] == 1  # every kind: the memory's entry too
    for bad in ({"limit": 0}, {"after": -1}, {"kinds": "nope"}):
        assert client.get("/api/v1/admin/log/counts", params=bad).status_code == 400, bad


def test_admin_records_of_some_streams_only(client):
    ids = {stream: ingest(client, stream=stream, content=f"fact in {stream}")["event_id"]
           for stream in ("a", "b", "c")}

    def listed(**params):
        response = client.get("/api/v1/admin/records",
                              params={"kind": "event", "user_id": "user_123", **params})
        return response.status_code, [r["event_id"] for r in response.json().get("records", [])]

    assert listed() == (200, [ids["a"], ids["b"], ids["c"]])
    assert listed(stream_id=["a", "c"]) == (200, [ids["a"], ids["c"]])
    assert listed(stream_id="nope") == (200, [])
    refused = client.get("/api/v1/admin/records",
                         params={"kind": "l1", "user_id": "user_123", "stream_id": "a"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "stream_id"
