"""Admission control on a served node: past a limit a request gets 503 overloaded with
Retry-After at once, the admitted ones finish, and nothing admitted is lost.

Commits are held deterministically: the indexer's Tantivy commit waits on a gate, so an ingest
is committed and applied but not acknowledged until the gate opens; it stays in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from conftest import free_port, make_settings, wait_until

from api import create_app
from memorose_client import MemoroseAPIError, MemoroseClient
from memorose_dagster.ids import new_id
from memorose_dagster.node.node import Node


@contextmanager
def served(tmp_path, embedder, **limits) -> Iterator[tuple[Node, str]]:
    """A node with these limits behind uvicorn in a thread; the app's ``Load`` is ``node.load``
    for the tests to watch."""
    node = Node(make_settings(tmp_path / "node", **{"admission_wait": 0.05, **limits}),
                embedder=embedder)
    node.wait_ready()
    port = free_port()
    app = create_app(node=node)
    node.load = app.state.load
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, what="uvicorn started")
        yield node, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        node.close()


@contextmanager
def held_commits(node: Node, monkeypatch) -> Iterator[threading.Event]:
    """Writes commit and apply, but are not acknowledged until the gate opens."""
    gate = threading.Event()
    real_commit = node.indexer.fulltext.commit

    def gated_commit() -> None:
        gate.wait(30)
        real_commit()

    monkeypatch.setattr(node.indexer.fulltext, "commit", gated_commit)
    try:
        yield gate
    finally:
        gate.set()


def event(content: str = "a held fact about hiking") -> dict:
    return {"event_id": new_id(), "user_id": "u", "stream_id": "s", "content": content}


def post(url: str, path: str, body: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=30, **kwargs)


def assert_overloaded(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "overloaded"
    assert limit in error["message"]


def start_held(pool: ThreadPoolExecutor, url: str, node: Node, bodies: list[tuple[str, dict]],
               ) -> list[Future]:
    """Send the writes and wait until each is applied (so each holds its place in flight)."""
    before = node.applied_index
    futures = [pool.submit(post, url, path, body) for path, body in bodies]
    wait_until(lambda: node.applied_index >= before + len(bodies), timeout=20,
               what="the held writes applied")
    return futures


def test_requests_past_max_inflight_get_503_and_the_admitted_succeed(tmp_path, embedder,
                                                                     monkeypatch):
    with served(tmp_path, embedder, max_inflight=3) as (node, url), \
            ThreadPoolExecutor(8) as pool:
        post(url, "/api/v1/events", event("warm the user"))
        held = [event() for _ in range(3)]
        with held_commits(node, monkeypatch) as gate:
            futures = start_held(pool, url, node, [("/api/v1/events", e) for e in held])
            refused = event()
            started = time.monotonic()
            assert_overloaded(post(url, "/api/v1/events", refused), "MEMOROSE_MAX_INFLIGHT")
            assert_overloaded(post(url, "/api/v1/retrieve", {"user_id": "u", "query": "x"}),
                              "MEMOROSE_MAX_INFLIGHT")
            assert time.monotonic() - started < 2.0  # refused at once, not queued
            assert httpx.get(url + "/health", timeout=5).status_code == 200  # exempt
            with MemoroseClient(url) as client, pytest.raises(MemoroseAPIError) as raised:
                client.ingest("u", "s", "one more")
            assert (raised.value.status, raised.value.code) == (503, "overloaded")
            assert not any(f.done() for f in futures)
            gate.set()
            assert [f.result().status_code for f in futures] == [201, 201, 201]
        for e in held:
            assert httpx.get(f"{url}/api/v1/events/{e['event_id']}").status_code == 200
        assert httpx.get(f"{url}/api/v1/events/{refused['event_id']}").status_code == 404
        assert post(url, "/api/v1/events", event()).status_code == 201  # room again


def test_writes_past_max_pending_commits_are_refused_while_reads_pass(tmp_path, embedder,
                                                                      monkeypatch):
    with served(tmp_path, embedder, max_inflight=10, max_pending_commits=2) as (node, url), \
            ThreadPoolExecutor(4) as pool:
        post(url, "/api/v1/events", event("warm the user"))
        with held_commits(node, monkeypatch) as gate:
            futures = start_held(pool, url, node, [("/api/v1/events", event()),
                                                   ("/api/v1/events/batch",
                                                    {"events": [event(), event()]})])
            assert_overloaded(post(url, "/api/v1/events/batch", {"events": [event()]}),
                              "MEMOROSE_MAX_PENDING_COMMITS")
            read = post(url, "/api/v1/retrieve", {"user_id": "u", "query": "hiking"})
            assert read.status_code == 200, read.text
            gate.set()
            assert [f.result().status_code for f in futures] == [201, 201]


def test_body_bytes_in_flight_are_bounded(tmp_path, embedder, monkeypatch):
    """A 60 KB batch holds its bytes; a second one (declared, or chunked) would pass the
    100 KB budget and is refused before it is read; a small read still fits."""
    batch = {"events": [event("x" * 1000) for _ in range(60)]}
    with served(tmp_path, embedder, max_inflight_bytes=100_000) as (node, url), \
            ThreadPoolExecutor(4) as pool:
        post(url, "/api/v1/events", event("warm the user"))
        with held_commits(node, monkeypatch) as gate:
            (held,) = start_held(pool, url, node, [("/api/v1/events/batch", batch)])
            second = {"events": [event("y" * 1000) for _ in range(60)]}
            assert_overloaded(post(url, "/api/v1/events/batch", second),
                              "MEMOROSE_MAX_INFLIGHT_BYTES")
            raw = httpx.Request("POST", "/", json=second).content

            def chunks() -> Iterator[bytes]:
                for i in range(0, len(raw), 8192):
                    yield raw[i:i + 8192]

            chunked = httpx.post(url + "/api/v1/events/batch", content=chunks(), timeout=30,
                                 headers={"content-type": "application/json"})
            assert_overloaded(chunked, "MEMOROSE_MAX_INFLIGHT_BYTES")
            read = post(url, "/api/v1/retrieve", {"user_id": "u", "query": "hiking"})
            assert read.status_code == 200, read.text
            gate.set()
            assert held.result().status_code == 201
        ids = [e["event_id"] for e in batch["events"]] + [e["event_id"] for e in second["events"]]
        found = [httpx.get(f"{url}/api/v1/events/{i}").status_code for i in ids]
        assert found == [200] * 60 + [404] * 60
        # Alone, a body over the whole budget is still taken (it is within max_body_bytes).
        big = {"events": [event("z" * 1000) for _ in range(120)]}
        assert post(url, "/api/v1/events/batch", big).status_code == 201


@pytest.mark.parametrize("limit", ["max_inflight", "max_pending_commits"])
def test_a_request_waits_briefly_for_room_instead_of_a_503(tmp_path, embedder, monkeypatch,
                                                           limit):
    with served(tmp_path, embedder, admission_wait=30.0, **{limit: 1}) as (node, url), \
            ThreadPoolExecutor(2) as pool:
        post(url, "/api/v1/events", event("warm the user"))
        with held_commits(node, monkeypatch) as gate:
            (held,) = start_held(pool, url, node, [("/api/v1/events", event())])
            waiting = pool.submit(post, url, "/api/v1/events", event())
            wait_until(lambda: node.load.waiting == 1, what="the second write waiting for room")
            gate.set()
            assert held.result().status_code == 201
            assert waiting.result().status_code == 201
