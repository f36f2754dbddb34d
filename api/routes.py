"""HTTP routes. Each reads and validates its body, then calls the node in the threadpool."""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.auth import require_admin, tenant_of
from api.batches import make_event
from api.body import read_body, read_raw
from api.params import path_id, query_id, query_ids
from api.responses import JSONResponse
from api.schemas import CandidatesIn, CommitIn, EventIn, RetrieveIn, UsersIn
from memorose_dagster.errors import Conflict, InvalidInput
from memorose_dagster.ids import new_ids
from memorose_dagster.node.node import Node
from memorose_dagster.node.retrieval import STAGES
from memorose_dagster.records import DEFAULT_TENANT, RECORD_TYPES, SAME_EVENT, event_record


def node_of(request: Request) -> Node:
    return request.app.state.node


def _resent(node: Node, sent: list[tuple[int, dict[str, Any]]], prefix: str) -> None:
    """A client-chosen id already stored is a resend: fine when it is the same event (nothing
    new is written), a 409 when the id holds another one. Ids the node made are new."""
    for i, event in sent:
        stored = node.find_event(event["tenant"], event["event_id"])
        if stored is not None and any(stored[k] != event[k] for k in SAME_EVENT):
            field = f"{prefix}{i}.event_id" if prefix else "event_id"
            raise Conflict(f"{field}: {event['event_id']} is already stored with another "
                           f"user, stream, content or metadata", field=field)


async def ingest_event(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await read_body(request, EventIn)
    now = round(time.time(), 6)
    made = None if body.event_id else new_ids(1, int(now * 1000))[0]
    event = make_event(tenant, body, "", request.app.state.settings.max_content_chars, now,
                       made)
    del body  # the event holds what the commit needs
    record = event_record(event)
    if made is None:
        _resent(node_of(request), [(0, record)], "")
    index = await run_in_threadpool(node_of(request).ingest_records, [record])
    return JSONResponse({"event_id": event.event_id, "log_index": index}, status_code=201)


async def ingest_batch(request: Request) -> JSONResponse:
    """The body is read into its log command in an ingest worker when it is large
    (``api.batches``); the events' receive time and the ids the node makes come from here."""
    tenant = tenant_of(request)
    settings = request.app.state.settings
    now = round(time.time(), 6)  # one receive time, to the microsecond, for every event
    prepared = await request.app.state.ingest.prepare(
        await read_raw(request), tenant, now, settings.max_batch, settings.max_content_chars)
    _resent(node_of(request), prepared.sent, "events.")
    payload, ids = prepared.command(int(now * 1000))
    del prepared  # only the command is held while the commit is awaited
    index = await run_in_threadpool(node_of(request).ingest_command, payload, ids)
    return JSONResponse({"event_ids": ids, "log_index": index}, status_code=201)


async def _consistent(request: Request, wanted: bool) -> None:
    """A consistent read first waits until this node has applied every acknowledged write."""
    if wanted:
        node = node_of(request)
        await run_in_threadpool(node.read_barrier, node.settings.commit_timeout)


async def get_event(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    await _consistent(request, bool_param(request.query_params, "consistent"))
    event = node_of(request).get_event(tenant, path_id(request, "event_id"))
    event.pop("tenant", None)
    event.pop("kind", None)
    return JSONResponse(event)


async def retrieve(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await read_body(request, RetrieveIn)
    await _consistent(request, body.consistent)
    node = node_of(request)
    node.require_user(tenant, body.user_id)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    results = await run_in_threadpool(node.retrieve, tenant, body.user_id, body.query,
                                      body.top_k, body.stream_id, body.layers, body.explain,
                                      timings)
    results = [r for r in results if r["relevance"] >= body.min_relevance]
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    node.record_access(tenant, results)
    # Where the time went, stage by stage (browsers' developer tools show it as is).
    stages = ", ".join(f"{stage};dur={timings[stage]:.2f}" for stage in STAGES
                       if stage in timings)
    return JSONResponse({"results": results, "took_ms": took_ms},
                        headers={"Server-Timing": f"{stages}, total;dur={took_ms:.2f}"})


async def health(request: Request) -> JSONResponse:
    """200 while the node serves: ``status`` is ``ok``, or ``degraded`` with the ``reason`` (a
    full disk or a storage error: writes are refused, reads still work)."""
    return JSONResponse(node_of(request).health())


async def cluster_status(request: Request) -> JSONResponse:
    require_admin(request)
    return JSONResponse(node_of(request).status())


async def read_log(request: Request) -> JSONResponse:
    """Pipeline: committed entries after a cursor (log index), oldest first, in pages.

    ``kinds`` (comma-separated) keeps only those record kinds; ``until`` stops at an index.
    ``next_cursor`` is the last index scanned, so a filtered page still moves the cursor.
    """
    require_admin(request)
    after, limit, kinds, until = _log_range(request.query_params, 5000)
    page = await run_in_threadpool(node_of(request).read_log, after, limit, kinds, until)
    return JSONResponse(page)


def _log_range(params: Any, max_limit: int) -> tuple[int, int, set[str] | None, int | None]:
    """``after``, ``limit``, ``kinds`` and ``until`` of a read of the log, checked."""
    after, limit = int_param(params, "after", 0), int_param(params, "limit", 500)
    until = int_param(params, "until", -1)
    if after < 0 or not 1 <= limit <= max_limit:
        raise InvalidInput(f"after must be >= 0 and limit within 1..{max_limit}", field="limit")
    kinds = set(filter(None, params.get("kinds", "").split(","))) or None
    unknown = (kinds or set()) - set(RECORD_TYPES)
    if unknown:
        raise InvalidInput(f"unknown kinds: {sorted(unknown)}", field="kinds")
    return after, limit, kinds, until if until >= 0 else None


async def log_counts(request: Request) -> JSONResponse:
    """Pipeline: per committed entry after a cursor, ``[log_index, records]``: how many records
    of ``kinds`` it holds (entries with none are left out), counted from the log alone, no
    record read. ``next_cursor`` is the last index scanned, as for the log itself."""
    require_admin(request)
    after, limit, kinds, until = _log_range(request.query_params, 50_000)
    page = await run_in_threadpool(node_of(request).log_counts, after, limit, kinds, until)
    return JSONResponse(page)


async def list_records(request: Request) -> JSONResponse:
    """Pipeline: every record of one kind for one user (events in the order they were made,
    of the streams named by ``stream_id``, repeatable, if any)."""
    require_admin(request)
    params = request.query_params
    kind, user_id = params.get("kind", ""), query_id(params, "user_id")
    if kind not in ("event", "l1", "l2", "entity", "relation", "access"):
        raise InvalidInput("kind must be one of event, l1, l2, entity, relation, access",
                           field="kind")
    if user_id is None:
        raise InvalidInput("user_id is required", field="user_id")
    tenant = query_id(params, "tenant", DEFAULT_TENANT)
    streams = query_ids(params, "stream_id")
    if streams is not None and kind != "event":
        raise InvalidInput("stream_id filters events only", field="stream_id")
    records = await run_in_threadpool(node_of(request).user_records, kind, tenant,
                                      user_id, streams)
    return JSONResponse({"records": records})


async def l1_candidates(request: Request) -> JSONResponse:
    """Pipeline: the user's L1 memories a consolidator run over new events can touch."""
    require_admin(request)
    body = await read_body(request, CandidatesIn)
    records = await run_in_threadpool(node_of(request).l1_candidates, body.tenant, body.user_id,
                                      body.contents, body.ids, body.event_ids)
    return JSONResponse({"records": records})


async def list_users(request: Request) -> JSONResponse:
    """Pipeline: every (tenant, user_id) with stored events."""
    require_admin(request)
    users = await run_in_threadpool(node_of(request).users)
    return JSONResponse({"users": [{"tenant": t, "user_id": u} for t, u in users]})


async def last_events(request: Request) -> JSONResponse:
    """Pipeline: the log index of each named user's last event (null: no event, or stored
    before the node kept it). A chunk of a backlog defers the graph and insights of a user with
    events in a later chunk."""
    require_admin(request)
    body = await read_body(request, UsersIn)
    users = [(u.tenant, u.user_id) for u in body.users]
    found = await run_in_threadpool(node_of(request).last_events, users)
    return JSONResponse({"users": [{"tenant": t, "user_id": u, "log_index": index}
                                   for (t, u), index in zip(users, found, strict=True)]})


async def events_between(request: Request) -> JSONResponse:
    """Pipeline: the events whose id was made in [from_ms, to_ms) (a backfill's day), by
    (tenant, event id), in pages: ``after_tenant`` and ``after_id`` continue a page."""
    require_admin(request)
    params = request.query_params
    start, end = int_param(params, "from_ms", -1), int_param(params, "to_ms", -1)
    limit = int_param(params, "limit", 2000)
    if not 0 <= start < end or not 1 <= limit <= 5000:
        raise InvalidInput("need 0 <= from_ms < to_ms and limit within 1..5000", field="from_ms")
    after_tenant, after_id = query_id(params, "after_tenant"), query_id(params, "after_id")
    if (after_tenant is None) != (after_id is None):
        raise InvalidInput("after_tenant and after_id go together", field="after_id")
    after = (after_tenant, after_id) if after_tenant is not None else None
    events, more = await run_in_threadpool(node_of(request).events_between, start, end,
                                           limit, after)
    return JSONResponse({"events": events, "next": (
        {"after_tenant": more[0], "after_id": more[1]} if more else None)})


async def derivations(request: Request) -> JSONResponse:
    """Pipeline: per derivation (the logic that made them), how many memories of ``kind`` (l1,
    l2) each ingest day holds: what a change of logic leaves to re-derive."""
    require_admin(request)
    kind = request.query_params.get("kind", "l1")
    if kind not in ("l1", "l2"):
        raise InvalidInput("kind must be l1 or l2", field="kind")
    counts = await run_in_threadpool(node_of(request).derivations, kind)
    return JSONResponse({"kind": kind, "derivations": counts})


def int_param(params: Any, name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer", field=name) from exc


def bool_param(params: Any, name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("1", "true", "0", "false"):
        raise InvalidInput(f"{name} must be true or false (or 1 or 0)", field=name)
    return value in ("1", "true")


async def commit(request: Request) -> JSONResponse:
    """Pipeline: commit a batch of derived records as one log command."""
    require_admin(request)
    body = await read_body(request, CommitIn)
    index = await run_in_threadpool(node_of(request).commit_derived, body.records)
    return JSONResponse({"log_index": index, "records": len(body.records)}, status_code=201)
