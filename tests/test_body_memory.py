"""What a request in flight holds: its body is read into one buffer whose bytes are gone before
parsing, and a write waiting on its commit holds its events, not its parsed body too."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from dataclasses import replace

from starlette.requests import Request
from starlette.testclient import TestClient

from api import create_app
from api.batches import OFFLOAD_BYTES
from api.body import read_body
from api.schemas import EventBatchIn, EventIn

CHUNK = 64 * 1024  # what uvicorn hands the app at a time


def batch(events: int) -> bytes:
    return json.dumps({"events": [{"user_id": "u1", "stream_id": "s1",
                                   "content": f"{i} " + "word " * 1000} for i in range(events)]
                       }).encode()


def request_for(client, raw: bytes) -> Request:
    """A request whose body arrives in chunks, each a new bytes object, as from the server."""
    pos = 0

    async def receive():
        nonlocal pos
        pos += CHUNK
        return {"type": "http.request", "body": raw[pos - CHUNK:pos], "more_body": pos < len(raw)}

    return Request({"type": "http", "method": "POST", "path": "/", "query_string": b"",
                    "headers": [(b"content-type", b"application/json")], "app": client.app},
                   receive)


def test_reading_a_body_costs_its_text_and_its_value_not_more(client):
    """The chunks, their join and the text decoded from it were all alive as the JSON was
    parsed: 4x the body at the peak. Now the bytes go before parsing: about 2x."""
    raw = batch(400)  # 2 MB, made before tracing
    loop = asyncio.new_event_loop()  # asyncio.run's own teardown would add to the peak
    try:
        gc.collect()
        tracemalloc.start()
        try:
            body = loop.run_until_complete(read_body(request_for(client, raw), EventBatchIn))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        loop.close()
    assert len(body.events) == 400
    assert peak < 2.5 * len(raw), f"peak {peak / len(raw):.2f}x the body"


def test_a_write_waiting_on_its_commit_holds_no_parsed_body(node, monkeypatch):
    """Read in this process (3 events, under ``OFFLOAD_BYTES``) or in an ingest worker (12):
    either way only the command is held while the commit is awaited."""
    alive: list[int] = []

    def counting(method):
        def counted(*args):
            gc.collect()
            alive.append(sum(isinstance(o, EventIn | EventBatchIn) for o in gc.get_objects()))
            return method(*args)
        return counted

    monkeypatch.setattr(node, "ingest_command", counting(node.ingest_command))
    monkeypatch.setattr(node, "ingest_records", counting(node.ingest_records))
    assert len(batch(3)) < OFFLOAD_BYTES < len(batch(12))
    with TestClient(create_app(replace(node.settings, ingest_workers=1), node)) as client:
        pool = client.app.state.ingest
        assert pool.start(), "an ingest worker answers"
        for events in (3, 12):
            assert client.post("/api/v1/events/batch", content=batch(events)).status_code == 201
        assert client.post("/api/v1/events", json={"user_id": "u1", "stream_id": "s1",
                                                   "content": "one"}).status_code == 201
    assert alive == [0, 0, 0]
    assert pool.offloaded == 1
