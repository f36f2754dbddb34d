"""The knowledge graph of a user, and prompt-ready context packed into a token budget."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import tenant_of
from api.body import read_body
from api.routes import int_param, node_of
from api.schemas import ContextIn
from memorose_dagster.errors import InvalidInput, NotFound
from memorose_dagster.memory.context import pack_context, tokens
from memorose_dagster.memory.graph import neighbourhood

MAX_HOPS = 3


async def user_graph(request: Request) -> JSONResponse:
    """Entities and relations of a user; ``?entity=NAME&hops=N`` for the part around one."""
    tenant = tenant_of(request)
    user_id = request.path_params["user_id"]
    hops = int_param(request.query_params, "hops", 1)
    if not 0 <= hops <= MAX_HOPS:
        raise InvalidInput(f"hops must be within 0..{MAX_HOPS}", field="hops")
    node = node_of(request)
    node.require_user(tenant, user_id)
    entities, relations = await run_in_threadpool(node.graph, tenant, user_id)
    entity = request.query_params.get("entity")
    entities, relations = neighbourhood(entities, relations, entity, hops)
    if entity is not None and not entities:
        raise NotFound(f"no entity named {entity!r} for this user", field="entity")
    strip = ("tenant", "kind", "log_index")
    return JSONResponse({
        "entities": [{k: v for k, v in e.items() if k not in strip} for e in entities],
        "relations": [{k: v for k, v in r.items() if k not in strip} for r in relations]})


async def context(request: Request) -> JSONResponse:
    """The best memories for a query, packed into ``max_tokens`` as prompt-ready text."""
    tenant = tenant_of(request)
    body = await read_body(request, ContextIn)
    node = node_of(request)
    node.require_user(tenant, body.user_id)
    results = await run_in_threadpool(node.retrieve, tenant, body.user_id, body.query, 50,
                                      body.stream_id, body.layers)
    text, used = pack_context(results, body.max_tokens, query=body.query,
                              min_relevance=body.min_relevance)
    return JSONResponse({"context": text, "tokens": tokens(text) if text else 0,
                         "memories": [{"id": r["id"], "layer": r["layer"], "score": r["score"],
                                       "provenance": r["provenance"]} for r in used]})
