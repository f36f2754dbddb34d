"""Admin reads for the lake, the audits and export: dated records of a kind in pages, the
partitions and ids a log range touched, the current rows of given ids, and this node's index
census."""

from __future__ import annotations

import base64
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require_admin
from api.body import read_body
from api.params import query_id
from api.responses import JSONResponse
from api.routes import int_param, node_of
from api.schemas import LakeRowsIn
from memorose_dagster.errors import InvalidInput

KINDS = ("event", "l1", "l2", "entity", "relation", "vector", "tombstone", "access")


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
            for k, v in record.items()}


def _after(raw: str | None) -> bytes | None:
    if not raw:
        return None
    try:
        return bytes.fromhex(raw)
    except ValueError as exc:
        raise InvalidInput("after must be the hex cursor of a previous page", field="after") \
            from exc


async def lake_records(request: Request) -> JSONResponse:
    """Records of one kind, each with its ``day``, in key order and pages: ``days``
    (comma-separated) and ``tenant`` narrow them; ``values=1`` keeps vector values (export)."""
    require_admin(request)
    params = request.query_params
    kind, limit = params.get("kind", ""), int_param(params, "limit", 2000)
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be within 1..10000", field="limit")
    days = set(filter(None, params.get("days", "").split(","))) or None
    records, more = await run_in_threadpool(
        node_of(request).lake_records, kind, days, query_id(params, "tenant"),
        _after(params.get("after")), limit, params.get("values") in ("1", "true"))
    return JSONResponse({"records": [_jsonable(r) for r in records],
                         "next": more.hex() if more is not None else None})


async def lake_touched(request: Request) -> JSONResponse:
    """The (tenant, day) partitions and (tenant, id)s written by log entries in
    (after, until]."""
    require_admin(request)
    params = request.query_params
    after, limit = int_param(params, "after", 0), int_param(params, "limit", 2000)
    until = int_param(params, "until", -1)
    if after < 0 or not 1 <= limit <= 10_000:
        raise InvalidInput("after must be >= 0 and limit within 1..10000", field="limit")
    body = await run_in_threadpool(node_of(request).lake_touched, after, limit=limit,
                                   until=until if until >= 0 else None)
    return JSONResponse(body)


async def lake_rows(request: Request) -> JSONResponse:
    """The current rows of every lake table whose id is one of ``ids`` in ``tenant``, read by
    key: what an incremental lake write merges into the partitions it rewrites."""
    require_admin(request)
    body = await read_body(request, LakeRowsIn)
    rows = await run_in_threadpool(node_of(request).lake_rows, body.tenant, body.ids)
    return JSONResponse({"records": [_jsonable(r) for r in rows]})


async def index_census(request: Request) -> JSONResponse:
    """Per user and layer: RocksDB against Tantivy and LanceDB on this node, and strays."""
    require_admin(request)
    return JSONResponse(await run_in_threadpool(node_of(request).index_census))


ROUTES = [
    Route("/api/v1/admin/lake/records", lake_records),
    Route("/api/v1/admin/lake/touched", lake_touched),
    Route("/api/v1/admin/lake/rows", lake_rows, methods=["POST"]),
    Route("/api/v1/admin/index/census", index_census),
]
