"""The dashboard at ``/dashboard``: static pages written in this repository (``api/static``),
and the few JSON reads they need beyond the public API, behind the same keys.

The pages hold no data: they ask for a key once per browser session and send it as
``Authorization: Bearer`` on every fetch. Every dashboard response carries a strict
Content-Security-Policy (``default-src 'self'``): nothing is loaded from anywhere else, and the
only other origin the pages may call is the Dagster UI's GraphQL, for the pipeline panel.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import caller, tenant_of
from api.responses import JSONResponse
from api.routes import int_param, node_of
from memorose_dagster.errors import InvalidInput, NotFound
from memorose_dagster.node.node import Node
from memorose_dagster.records import MEMORY_LAYERS
from memorose_dagster.settings import is_loopback

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
SCAN_BUDGET = 3000  # memories read per filtered page: bounds its time at 100k (bench/dashboard.py)
MAX_PAGE = 200
CHAIN_LIMIT = 20  # supersede steps followed either way
MEMBER_LIMIT = 50  # an insight's members shown with their provenance
EVENT_LIMIT = 100  # raw events shown under a memory


def dagster_url() -> str:
    """The Dagster UI: ``MEMOROSE_DAGSTER_URL``, else 127.0.0.1 on ``MEMOROSE_DAGSTER_PORT``."""
    port = os.environ.get("MEMOROSE_DAGSTER_PORT", "3000")
    default = f"http://127.0.0.1:{port}" if port.isdigit() else DEFAULT_DAGSTER_URL
    return os.environ.get("MEMOROSE_DAGSTER_URL", default).rstrip("/")


def security_headers(dagster: str) -> dict[str, str]:
    parts = urlsplit(dagster)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""
    policy = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              f"connect-src 'self' {origin}".rstrip() + "; frame-ancestors 'none'; "
              "base-uri 'none'; form-action 'none'; object-src 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Cache-Control": "no-cache"}


def _load_static() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            files[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), kind)
    return files


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """What the memories page filters on: stream, time (a memory's valid-from, else its
    creation), superseded or not, and a minimum importance."""

    stream_id: str | None = None
    since: float | None = None
    until: float | None = None
    superseded: bool | None = None
    min_importance: float | None = None

    def __call__(self, record: dict[str, Any]) -> bool:
        if self.stream_id is not None and record.get("stream_id") != self.stream_id:
            return False
        when = record.get("valid_from") or record.get("created_at") or 0.0
        if self.since is not None and when < self.since:
            return False
        if self.until is not None and when >= self.until:
            return False
        if self.superseded is not None and bool(record.get("superseded_by")) != self.superseded:
            return False
        return self.min_importance is None \
            or float(record.get("importance", 0.0)) >= self.min_importance

    @classmethod
    def from_query(cls, params: Any) -> MemoryFilter:
        superseded = params.get("superseded", "any")
        if superseded not in ("any", "yes", "no"):
            raise InvalidInput("superseded must be any, yes or no", field="superseded")
        return cls(stream_id=params.get("stream_id") or None,
                   since=_number(params, "since"), until=_number(params, "until"),
                   superseded=None if superseded == "any" else superseded == "yes",
                   min_importance=_number(params, "min_importance"))


def _number(params: Any, name: str) -> float | None:
    raw = params.get(name, "")
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a number", field=name) from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidInput(f"{name} must be a finite number", field=name)
    return value


def make_routes() -> list[Route]:
    """The dashboard's routes; its files are read once, here."""
    files = _load_static()
    dagster = dagster_url()
    headers = security_headers(dagster)

    def serve(name: str) -> Response:
        if name not in files:
            raise NotFound(f"no dashboard file {name!r}")
        body, kind = files[name]
        return Response(body, media_type=kind, headers=headers)

    async def page(_request: Request) -> Response:
        return serve("index.html")

    async def static(request: Request) -> Response:
        return serve(request.path_params["name"])

    async def whoami(request: Request) -> JSONResponse:
        """Who this key is (401 for a wrong one): what the pages may show."""
        who = caller(request)
        host = request.app.state.settings.host
        return JSONResponse({
            "role": who.role, "tenant": None if who.role == "admin" else who.tenant,
            "read_only": who.read_only, "open": who.role == "open", "bind": host,
            "loopback": is_loopback(host), "dagster_url": dagster,
            "node_id": request.app.state.settings.name}, headers=headers)

    return [
        Route("/dashboard", page),
        Route("/dashboard/", page),
        Route("/dashboard/static/{name:path}", static),
        Route("/dashboard/api/whoami", whoami),
        Route("/dashboard/api/users", users),
        Route("/dashboard/api/users/{user_id}/memories", memories),
        Route("/dashboard/api/memories/{memory_id}/history", history),
        Route("/dashboard/api/recent", recent),
    ]


def _doc(summary: str, params: list[tuple[str, str, str]] = (), html: bool = False,
         **errors: str) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {"200": {"description": "the page" if html else "ok"}}
    responses.update({status.lstrip("_"): {"description": text, **error}
                      for status, text in errors.items()})
    return {"get": {"summary": summary, "tags": ["dashboard"], "responses": responses,
                    "parameters": [{"name": n, "in": where, "required": where == "path",
                                    "schema": {"type": kind}} for n, where, kind in params]}}


def openapi_paths() -> dict[str, Any]:
    """The dashboard's routes, for the OpenAPI document (its JSON reads take the API's keys)."""
    page = _doc("The dashboard (static; it asks for a key)", html=True)
    keyed = {"_401": "missing or unknown key"}
    tenant = {**keyed, "_403": "the admin key reaches no tenant data"}
    filters = [("user_id", "path", "string"), ("layer", "query", "string"),
               ("stream_id", "query", "string"), ("since", "query", "number"),
               ("until", "query", "number"), ("superseded", "query", "string"),
               ("min_importance", "query", "number"), ("cursor", "query", "string"),
               ("limit", "query", "integer")]
    return {
        "/dashboard": page, "/dashboard/": page,
        "/dashboard/static/{name}": _doc("A dashboard file (script, style)",
                                         [("name", "path", "string")], html=True,
                                         _404="no such file"),
        "/dashboard/api/whoami": _doc("What the key reaches (role, tenant, open mode)", **keyed),
        "/dashboard/api/users": _doc("The users of the key's tenant", **tenant),
        "/dashboard/api/users/{user_id}/memories": _doc(
            "A user's memories, filtered; a page reads at most SCAN_BUDGET records",
            filters, _400="bad filter", _404="unknown user_id", **tenant),
        "/dashboard/api/memories/{memory_id}/history": _doc(
            "A memory, its supersede history and provenance chain",
            [("memory_id", "path", "string")], _404="no such memory", **tenant),
        "/dashboard/api/recent": _doc(
            "Events, memories and insights committed after a log index",
            [("after", "query", "integer"), ("limit", "query", "integer")],
            _400="bad after or limit", **tenant),
    }


async def users(request: Request) -> JSONResponse:
    """The users of this key's tenant (those with events)."""
    tenant = tenant_of(request)
    found = await run_in_threadpool(node_of(request).users)
    return JSONResponse({"users": sorted(u for t, u in found if t == tenant)})


async def memories(request: Request) -> JSONResponse:
    """A user's memories, filtered, paged in id order; each page reads at most SCAN_BUDGET."""
    tenant = tenant_of(request)
    user_id, params = request.path_params["user_id"], request.query_params
    layer, cursor = params.get("layer", "L1"), params.get("cursor", "")
    limit = int_param(params, "limit", 50)
    if layer not in MEMORY_LAYERS:
        raise InvalidInput("layer must be L1 or L2", field="layer")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be within 1..{MAX_PAGE}", field="limit")
    match = MemoryFilter.from_query(params)
    node = node_of(request)
    node.require_user(tenant, user_id)
    page = await run_in_threadpool(node.memories.filtered, tenant, user_id, layer, cursor,
                                   limit, match, SCAN_BUDGET)
    return JSONResponse(page)


def _history(node: Node, tenant: str, memory_id: str) -> dict[str, Any]:
    memory = node.memories.get(tenant, memory_id)
    newer, step = [], memory.get("superseded_by")
    while step and len(newer) < CHAIN_LIMIT:
        try:
            newer.append(node.memories.get(tenant, step))
        except NotFound:  # the newer version was forgotten since
            break
        step = newer[-1].get("superseded_by")
    return {"memory": memory, "newer": newer, "older": _older(node, tenant, memory),
            "members": [_member(node, tenant, m) for m in memory.get("member_ids", [])
                        [:MEMBER_LIMIT]],
            "events": _events(node, tenant, [p["event_id"] for p in memory["provenance"]]
                              [:EVENT_LIMIT])}


def _older(node: Node, tenant: str, memory: dict[str, Any]) -> list[dict[str, Any]]:
    """The versions this memory superseded, newest first. The store keeps no link back, and an
    older value shares its subject's words, so they are looked up through the search index."""
    if memory["layer"] != "L1":
        return []
    hits = node.retrieve(tenant, memory["user_id"], memory["content"][:1000], 50, layers=["L1"])
    older: list[str] = []
    wanted = {memory["id"]}
    while wanted and len(older) < CHAIN_LIMIT:
        found = [h["id"] for h in hits if h.get("superseded_by") in wanted
                 and h["id"] not in older]
        older += found
        wanted = set(found)
    return [node.memories.get(tenant, rid) for rid in older[:CHAIN_LIMIT]]


def _member(node: Node, tenant: str, memory_id: str) -> dict[str, Any]:
    try:
        return node.memories.get(tenant, memory_id)
    except NotFound:
        return {"id": memory_id, "layer": "L1", "missing": True, "provenance": []}


def _events(node: Node, tenant: str, event_ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for event_id in event_ids:
        event = node.find_event(tenant, event_id)
        if event is not None:
            out.append({k: v for k, v in event.items() if k not in ("tenant", "kind")})
    return out


async def history(request: Request) -> JSONResponse:
    """A memory with its supersede history either way and its provenance chain: an insight's
    members, and the raw events (with their metadata) behind the memory."""
    tenant = tenant_of(request)
    found = await run_in_threadpool(_history, node_of(request), tenant,
                                    request.path_params["memory_id"])
    return JSONResponse(found)


async def recent(request: Request) -> JSONResponse:
    """Events, memories and insights of this tenant committed after ``after`` (a log index):
    what the live view polls."""
    tenant = tenant_of(request)
    params = request.query_params
    after = int_param(params, "after", -1)
    limit = int_param(params, "limit", 100)
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be within 1..500", field="limit")
    found = await run_in_threadpool(node_of(request).memories.recent, tenant,
                                    None if after < 0 else after, limit)
    return JSONResponse(found)
