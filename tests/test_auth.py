"""API keys are a tenant boundary; the pipeline endpoints need the admin key."""

from __future__ import annotations

import pytest
from conftest import make_settings
from starlette.testclient import TestClient

from api import create_app
from memorose_dagster.node.node import Node


@pytest.fixture
def keyed(tmp_path, embedder):
    settings = make_settings(tmp_path / "k", api_keys={"key-a": "acme", "key-b": "globex"},
                             admin_key="admin-secret")
    node = Node(settings, embedder=embedder)
    node.wait_ready()
    with TestClient(create_app(node=node)) as client:
        yield client
    node.close()


def as_key(key):
    return {"Authorization": f"Bearer {key}"}


def test_keys_separate_tenants(keyed):
    event = {"user_id": "same-user", "stream_id": "s", "content": "launch codes are blue"}
    a = keyed.post("/api/v1/events", json=event, headers=as_key("key-a"))
    assert a.status_code == 201
    query = {"user_id": "same-user", "query": "launch codes"}
    assert keyed.post("/api/v1/retrieve", json=query, headers=as_key("key-a")).json()["results"]
    other = keyed.post("/api/v1/retrieve", json=query, headers=as_key("key-b"))
    assert other.status_code == 404  # globex has no such user: acme's data is invisible
    leaked = keyed.get(f"/api/v1/events/{a.json()['event_id']}", headers=as_key("key-b"))
    assert leaked.status_code == 404


def test_missing_and_wrong_keys(keyed):
    event = {"user_id": "u", "stream_id": "s", "content": "x"}
    missing = keyed.post("/api/v1/events", json=event)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = keyed.post("/api/v1/events", json=event, headers=as_key("guess"))
    assert wrong.status_code == 401


def test_admin_endpoints_need_admin_key(keyed):
    assert keyed.get("/api/v1/admin/log", headers=as_key("key-a")).status_code == 403
    assert keyed.get("/api/v1/admin/log").status_code == 401
    ok = keyed.get("/api/v1/admin/log", headers=as_key("admin-secret"))
    assert ok.status_code == 200 and "entries" in ok.json()
