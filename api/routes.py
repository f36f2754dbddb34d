"""HTTP routes. Each reads and validates its body, then calls the node in the threadpool."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import require_admin, tenant_of
from api.schemas import CommitIn, EventBatchIn, EventIn, RetrieveIn
from memorose_dagster.errors import InvalidInput, NotFound, PayloadTooLarge
from memorose_dagster.node import Node
from memorose_dagster.records import Event, new_id, record_from_dict


def _node(request: Request) -> Node:
    return request.app.state.node


M = TypeVar("M", bound=BaseModel)


async def _body(request: Request, model: type[M]) -> M:
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over the {limit}-byte limit", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over the {limit}-byte limit", limit=limit)
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}", field="") from exc
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="")
    return model.model_validate(data)


def _event(request: Request, tenant: str, body: EventIn, field: str) -> Event:
    limit = request.app.state.settings.max_content_chars
    if len(body.content) > limit:
        raise InvalidInput(f"{field}content: longer than {limit} characters",
                           field=f"{field}content")
    now = time.time()
    return Event(event_id=new_id(int(now * 1000)), tenant=tenant, user_id=body.user_id,
                 stream_id=body.stream_id, content=body.content,
                 timestamp=body.timestamp.timestamp() if body.timestamp else now,
                 content_type=body.content_type, metadata=body.metadata)


async def ingest_event(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    event = _event(request, tenant, await _body(request, EventIn), "")
    index = await run_in_threadpool(_node(request).ingest, [event])
    return JSONResponse({"event_id": event.event_id, "log_index": index}, status_code=201)


async def ingest_batch(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await _body(request, EventBatchIn)
    limit = request.app.state.settings.max_batch
    if len(body.events) > limit:
        raise InvalidInput(f"events: {len(body.events)} events, over the batch limit of {limit}",
                           field="events", limit=limit)
    events = [_event(request, tenant, e, f"events.{i}.") for i, e in enumerate(body.events)]
    index = await run_in_threadpool(_node(request).ingest, events)
    return JSONResponse({"event_ids": [e.event_id for e in events], "log_index": index},
                        status_code=201)


async def get_event(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    event = _node(request).get_event(tenant, request.path_params["event_id"])
    event.pop("tenant", None)
    event.pop("kind", None)
    return JSONResponse(event)


async def retrieve(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await _body(request, RetrieveIn)
    node = _node(request)
    if not node.has_user(tenant, body.user_id):
        raise NotFound(f"unknown user_id {body.user_id!r}: no events stored", field="user_id")
    started = time.perf_counter()
    results = await run_in_threadpool(node.retrieve, tenant, body.user_id, body.query,
                                      body.top_k, body.stream_id, body.layers)
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    return JSONResponse({"results": results, "took_ms": took_ms})


async def health(request: Request) -> JSONResponse:
    status = _node(request).status()
    return JSONResponse({"status": "ok", "role": status["role"], "leader": status["leader"]})


async def cluster_status(request: Request) -> JSONResponse:
    tenant_of(request)
    return JSONResponse(_node(request).status())


async def read_log(request: Request) -> JSONResponse:
    """Pipeline: committed entries after a cursor (log index), oldest first, in pages."""
    require_admin(request)
    try:
        after = int(request.query_params.get("after", "0"))
        limit = int(request.query_params.get("limit", "500"))
    except ValueError as exc:
        raise InvalidInput("after and limit must be integers", field="after") from exc
    if after < 0 or not 1 <= limit <= 5000:
        raise InvalidInput("after must be >= 0 and limit within 1..5000", field="limit")
    node = _node(request)
    entries = await run_in_threadpool(node.read_log, after, limit)
    for entry in entries:
        entry["records"] = [_jsonable(r) for r in entry["records"]]
    return JSONResponse({"entries": entries,
                         "next_cursor": entries[-1]["log_index"] if entries else after,
                         "applied_index": node.store.applied_index})


async def commit(request: Request) -> JSONResponse:
    """Pipeline: commit a batch of derived records as one log command."""
    require_admin(request)
    body = await _body(request, CommitIn)
    records = []
    for i, raw in enumerate(body.records):
        if raw.get("kind") == "event":
            raise InvalidInput(f"records.{i}: events enter through /api/v1/events",
                               field=f"records.{i}.kind")
        try:
            if raw.get("kind") == "vector" and isinstance(raw.get("values"), str):
                raw = {**raw, "values": base64.b64decode(raw["values"], validate=True)}
            records.append(record_from_dict(raw).to_dict())
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"records.{i}: {exc}", field=f"records.{i}") from exc
    index = await run_in_threadpool(_node(request).submit, records)
    return JSONResponse({"log_index": index, "records": len(records)}, status_code=201)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
            for k, v in record.items()}
