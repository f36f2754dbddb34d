"""Memory routes: read one memory or a user's memories, forget (delete) with cascade, and forget
by query in two steps (preview, then confirm with the signed token)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.auth import tenant_of
from api.body import read_body
from api.routes import int_param, node_of
from api.schemas import Id, Layer, Strict
from memorose_dagster.errors import InvalidInput, NotFound
from memorose_dagster.forgetting import Forgetter
from memorose_dagster.log import keys
from memorose_dagster.node import Node

MAX_PAGE = 500
MEMORY_KINDS = {"L1": "l1", "L2": "l2"}
VIEW_FIELDS = ("importance", "keywords", "entities", "valid_from", "valid_to", "created_at",
               "superseded_by", "pinned", "time_label", "topic", "member_ids", "derivation",
               "log_index")


class ForgetQueryIn(Strict):
    user_id: Id
    query: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    top_k: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    layers: Annotated[list[Layer], Field(min_length=1)] | None = None


class ForgetConfirmIn(Strict):
    token: Annotated[StrictStr, Field(min_length=1, max_length=32_768)]
    ids: Annotated[list[Id], Field(min_length=1, max_length=100)]


def _forgetter(request: Request) -> Forgetter:
    forgetter = getattr(request.app.state, "forgetter", None)
    if forgetter is None:  # one per app: the token key is derived once from the cluster secret
        forgetter = request.app.state.forgetter = Forgetter(node_of(request))
    return forgetter


def memory_view(node: Node, tenant: str, layer: str, record: dict[str, Any]) -> dict[str, Any]:
    """An L1 or L2 record as the API shows it, with provenance like retrieve results."""
    provenance = []
    for event_id in record.get("source_event_ids", []):
        event = node.store.get(keys.event(tenant, event_id))
        if event is not None:
            provenance.append({k: event[k] for k in
                               ("event_id", "stream_id", "timestamp", "metadata")})
    view = {"id": record["id"], "layer": layer, "content": record["content"],
            "user_id": record["user_id"], "stream_id": record.get("stream_id"),
            "provenance": provenance}
    view.update({k: record[k] for k in VIEW_FIELDS if k in record})
    return view


def _find_memory(node: Node, tenant: str, memory_id: str) -> tuple[str, dict[str, Any]]:
    for layer in MEMORY_KINDS:
        record = node.get_record(tenant, layer, memory_id)
        if record is not None:
            return layer, record
    raise NotFound(f"no memory {memory_id!r}")


async def get_memory(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    node = node_of(request)
    layer, record = _find_memory(node, tenant, request.path_params["memory_id"])
    return JSONResponse(memory_view(node, tenant, layer, record))


def _page(node: Node, tenant: str, user_id: str, layer: str, cursor: str,
          limit: int) -> dict[str, Any]:
    """A user's memories of one layer in id order, ``limit`` after ``cursor`` (an id)."""
    out: list[dict[str, Any]] = []
    for record in node.store.records(keys.derived_prefix(MEMORY_KINDS[layer], tenant)):
        if record.get("user_id") != user_id or record["id"] <= cursor:
            continue
        if len(out) == limit:
            return {"memories": out, "next_cursor": out[-1]["id"]}
        out.append(memory_view(node, tenant, layer, record))
    return {"memories": out, "next_cursor": None}


async def list_memories(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    user_id, params = request.path_params["user_id"], request.query_params
    layer, cursor = params.get("layer", "L1"), params.get("cursor", "")
    limit = int_param(params, "limit", 50)
    if layer not in MEMORY_KINDS:
        raise InvalidInput("layer must be L1 or L2", field="layer")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be within 1..{MAX_PAGE}", field="limit")
    node = node_of(request)
    node.require_user(tenant, user_id)
    page = await run_in_threadpool(_page, node, tenant, user_id, layer, cursor, limit)
    return JSONResponse(page)


def _forget_memory(forgetter: Forgetter, node: Node, tenant: str,
                   memory_id: str) -> dict[str, Any]:
    layer, _ = _find_memory(node, tenant, memory_id)
    return forgetter.forget(tenant, layer, memory_id)


async def delete_memory(request: Request) -> JSONResponse:
    """Forget an L1 memory or L2 insight and everything derived from it."""
    tenant = tenant_of(request)
    removed = await run_in_threadpool(_forget_memory, _forgetter(request), node_of(request),
                                      tenant, request.path_params["memory_id"])
    return JSONResponse(removed)


async def delete_event(request: Request) -> JSONResponse:
    """Forget a raw event, the memories derived only from it, and their dependents."""
    tenant = tenant_of(request)
    removed = await run_in_threadpool(_forgetter(request).forget, tenant, "L0",
                                      request.path_params["event_id"])
    return JSONResponse(removed)


async def forget_preview(request: Request) -> JSONResponse:
    """What a forget by query would remove, and the token that confirms it. Changes nothing."""
    tenant = tenant_of(request)
    body = await read_body(request, ForgetQueryIn)
    node_of(request).require_user(tenant, body.user_id)
    preview = await run_in_threadpool(_forgetter(request).preview, tenant, body.user_id,
                                      body.query, body.top_k, body.layers)
    return JSONResponse(preview)


async def forget_confirm(request: Request) -> JSONResponse:
    tenant = tenant_of(request)
    body = await read_body(request, ForgetConfirmIn)
    removed = await run_in_threadpool(_forgetter(request).confirm, tenant, body.token, body.ids)
    return JSONResponse(removed)


ROUTES = [
    Route("/api/v1/memories/{memory_id}", get_memory, methods=["GET"]),
    Route("/api/v1/memories/{memory_id}", delete_memory, methods=["DELETE"]),
    Route("/api/v1/users/{user_id}/memories", list_memories, methods=["GET"]),
    Route("/api/v1/events/{event_id}", delete_event, methods=["DELETE"]),
    Route("/api/v1/forget", forget_preview, methods=["POST"]),
    Route("/api/v1/forget/confirm", forget_confirm, methods=["POST"]),
]
