"""The knowledge graph of a user, and prompt-ready context packed into a token budget."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.auth import tenant_of
from api.body import read_body
from api.params import path_id
from api.responses import JSONResponse
from api.routes import bool_param, int_param, node_of
from api.schemas import ContextIn
from memorose_dagster.errors import InvalidInput, NotFound
from memorose_dagster.memory.context import pack_context, tokens
from memorose_dagster.memory.graph import neighbourhood

MAX_HOPS = 3


async def user_graph(request: Request) -> JSONResponse:
    """Entities and relations of a user; ``?entity=NAME&hops=N`` for the part around one;
    ``?mentions=false`` leaves out the ``mentioned_in`` edges (most of a large graph's bytes:
    every entity lists its memories in ``memory_ids`` anyway)."""
    tenant = tenant_of(request)
    user_id = path_id(request, "user_id")
    hops = int_param(request.query_params, "hops", 1)
    if not 0 <= hops <= MAX_HOPS:
        raise InvalidInput(f"hops must be within 0..{MAX_HOPS}", field="hops")
    node = node_of(request)
    node.require_user(tenant, user_id)
    mentions = bool_param(request.query_params, "mentions") \
        if "mentions" in request.query_params else True
    entities, relations = await run_in_threadpool(node.graph, tenant, user_id, mentions)
    entity = request.query_params.get("entity")
    entities, relations = neighbourhood(entities, relations, entity, hops)
    if entity is not None and not entities:
        raise NotFound(f"no entity named {entity!r} for this user", field="entity")
    for record in (*entities, *relations):  # read for this answer only: trimmed in place
        for name in ("tenant", "kind", "log_index"):
            record.pop(name, None)
    return JSONResponse({"entities": entities, "relations": relations})


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
