"""Memory routes: read one memory or a user's memories, forget (delete) with cascade, and forget
by query in two steps (preview, then confirm with the signed token)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import tenant_of
from api.body import read_body
from api.params import path_id, query_id
from api.responses import JSONResponse
from api.routes import int_param, node_of
from api.schemas import Id, Layer, Strict
from memorose_dagster.errors import InvalidInput
from memorose_dagster.node.node import Node
from memorose_dagster.records import MEMORY_LAYERS

MAX_PAGE = 500


class ForgetQueryIn(Strict):
    user_id: Id
    query: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    top_k: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    layers: Annotated[list[Layer], Field(min_length=1)] | None = None


class ForgetConfirmIn(Strict):
    token: Annotated[StrictStr, Field(min_length=1, max_length=32_768)]
    ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


async def get_memory(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    view = await run_in_threadpool(node_of(request).memories.get, tenant,
                                   path_id(request, "memory_id"))
    return JSONResponse(view)


async def list_memories(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    user_id, params = path_id(request, "user_id"), request.query_params
    layer = params.get("layer", "L1")
    cursor = query_id(params, "cursor", "") if params.get("cursor") else ""  # "": the start
    limit = int_param(params, "limit", 50)
    if layer not in MEMORY_LAYERS:
        raise InvalidInput("layer must be L1 or L2", field="layer")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be within 1..{MAX_PAGE}", field="limit")
    node = node_of(request)
    node.require_user(tenant, user_id)
    page = await run_in_threadpool(node.memories.page, tenant, user_id, layer, cursor, limit)
    return JSONResponse(page)


def _forget_memory(node: Node, tenant: str, memory_id: str) -> dict[str, Any]:
    layer, _ = node.memories.find(tenant, memory_id)
    return node.forgetter.forget(tenant, layer, memory_id)


async def delete_memory(request: Request) -> JSONResponse:
    """Forget an L1 memory or L2 insight and everything derived from it."""
    tenant = tenant_of(request)
    removed = await run_in_threadpool(_forget_memory, node_of(request), tenant,
                                      path_id(request, "memory_id"))
    return JSONResponse(removed)


async def delete_event(request: Request) -> JSONResponse:
    """Forget a raw event, the memories derived only from it, and their dependents."""
    tenant = tenant_of(request)
    removed = await run_in_threadpool(node_of(request).forgetter.forget, tenant, "L0",
                                      path_id(request, "event_id"))
    return JSONResponse(removed)


async def forget_preview(request: Request) -> JSONResponse:
    """What a forget by query would remove, and the token that confirms it. Changes nothing."""
    tenant = tenant_of(request)
    body = await read_body(request, ForgetQueryIn)
    node_of(request).require_user(tenant, body.user_id)
    preview = await run_in_threadpool(node_of(request).forgetter.preview, tenant, body.user_id,
                                      body.query, body.top_k, body.layers)
    return JSONResponse(preview)


async def forget_confirm(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await read_body(request, ForgetConfirmIn)
    removed = await run_in_threadpool(node_of(request).forgetter.confirm, tenant, body.token,
                                      body.ids)
    return JSONResponse(removed)


ROUTES = [
    Route("/api/v1/memories/{memory_id}", get_memory, methods=["GET"]),
    Route("/api/v1/memories/{memory_id}", delete_memory, methods=["DELETE"]),
    Route("/api/v1/users/{user_id}/memories", list_memories, methods=["GET"]),
    Route("/api/v1/events/{event_id}", delete_event, methods=["DELETE"]),
    Route("/api/v1/forget", forget_preview, methods=["POST"]),
    Route("/api/v1/forget/confirm", forget_confirm, methods=["POST"]),
]
