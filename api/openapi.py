"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from api.cluster_routes import WAIT_LIMIT, MemberIn
from api.key_routes import KeyIn
from api.memory_routes import ForgetConfirmIn, ForgetQueryIn
from api.schemas import (
    CandidatesIn,
    CommitIn,
    ContextIn,
    EventBatchIn,
    EventIn,
    Id,
    LakeRowsIn,
    LeaseIn,
    RetrieveIn,
    UsersIn,
)

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "field": {"type": "string"}}}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


def _responses(ok: int, description: str, **errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": description}}
    for status, text in errors.items():
        out[status.lstrip("_")] = {"description": text, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


def _op(summary: str, ok: int, description: str, body: type[BaseModel] | None = None,
        **errors: str) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": _responses(ok, description, **errors)}
    if body is not None:
        op["requestBody"] = _body(body)
    return op


BODY = {"_400": "invalid input (the error names the field)",
        "_413": "body over the size limit",
        "_415": "body not sent as application/json (or application/*+json)"}
BAD = {**BODY, "_401": "missing or unknown key", "_503": "no leader / no quorum"}
RESENT = {"_409": "event_id already stored with another user, stream, content or metadata"}


def build() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    for model in (EventIn, EventBatchIn, RetrieveIn, ContextIn, CommitIn, CandidatesIn, LeaseIn,
                  UsersIn, ForgetQueryIn, ForgetConfirmIn, MemberIn, KeyIn, LakeRowsIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    paths = {
        "/health": {"get": _op("Liveness and Raft role", 200, "ok")},
        "/mcp": {"post": _op("MCP over streamable HTTP (JSON-RPC; tools remember, recall, "
                             "context, graph, memories, forget_preview, forget_confirm)", 200,
                             "the JSON-RPC answer", _400="not a JSON-RPC message",
                             _401="missing or unknown key",
                             _406="must accept application/json and text/event-stream",
                             _415="the body must be application/json")},
        "/api/v1/events": {"post": _op("Ingest one event", 201, "{event_id, log_index}",
                                       EventIn, **BAD, **RESENT)},
        "/api/v1/events/batch": {"post": _op(
            "Ingest a batch (all or nothing)", 201, "{event_ids, log_index} in the order sent",
            EventBatchIn, **BAD, **RESENT)},
        "/api/v1/events/{event_id}": {"get": {**_op("One event as stored", 200, "the event",
                                                    _400="bad event_id, or consistent not "
                                                    "a boolean",
                                                    _404="unknown event id"),
            "parameters": _path_param("event_id") + [{
                "name": "consistent", "in": "query",
                "schema": {"enum": ["true", "false", "1", "0"]},
                "description": "first wait for every write acknowledged before this request"}]}},
        "/api/v1/retrieve": {"post": _op(
            "Hybrid retrieval with provenance", 200, "{results: [{id, layer, content, score, "
            "provenance}], took_ms}; a Server-Timing header gives each stage's milliseconds "
            "(entities, bm25, embed, vectors, records, rank, sources, total)", RetrieveIn,
            _404="unknown user_id", **BAD)},
        "/api/v1/cluster/status": {"get": _op("Raft role, term, commit and applied index "
                                              "(admin)", 200, "status",
                                              _403="admin key required")},
        "/api/v1/admin/log": {"get": {**_op("Committed log entries after a cursor (admin)",
                                            200, "{entries, next_cursor, applied_index}",
                                            _400="bad after, until, limit or kinds",
                                            _403="admin key required"),
            "parameters": [{"name": n, "in": "query", "schema": {"type": "integer"}}
                           for n in ("after", "limit", "until")]
            + [{"name": "kinds", "in": "query", "schema": {"type": "string"}}]}},
        "/api/v1/admin/log/counts": {"get": {**_op(
            "Per committed entry after a cursor, how many records of kinds it holds, counted "
            "from the log alone (admin)", 200, "{entries: [[log_index, records]], next_cursor, "
            "applied_index}", _400="bad after, until, limit or kinds",
            _403="admin key required"),
            "parameters": [{"name": n, "in": "query", "schema": {"type": "integer"}}
                           for n in ("after", "limit", "until")]
            + [{"name": "kinds", "in": "query", "schema": {"type": "string"}}]}},
        "/api/v1/admin/records": {"get": {**_op(
            "Every record of one kind for one user (admin)", 200, "{records}",
            _400="unknown kind, missing user_id, or a bad user_id, tenant or stream_id",
            _403="admin key required"),
            "parameters": _query("kind", "user_id", "tenant", "stream_id")}},
        "/api/v1/admin/candidates": {"post": _op(
            "A user's L1 memories a consolidator run over new events can touch (admin)", 200,
            "{records}", CandidatesIn, _403="admin key required", **BAD)},
        "/api/v1/admin/users": {"get": _op("Every (tenant, user_id) with events (admin)", 200,
                                           "{users}", _403="admin key required")},
        "/api/v1/admin/users/last-events": {"post": _op(
            "The log index of each user's last event, null if unknown (admin)", 200,
            "{users: [{tenant, user_id, log_index}]}", UsersIn, _403="admin key required",
            **BAD)},
        "/api/v1/admin/commit": {"post": _op("Commit derived records as one command (admin)",
                                             201, "{log_index}", CommitIn,
                                             _403="admin key required", **BAD)},
    }
    paths["/api/v1/events/{event_id}"]["delete"] = {**_op(
        "Forget an event and what rests only on it", 200, FORGOTTEN, _400=BAD_ID,
        _404="unknown event id"),
        "parameters": _path_param("event_id")}
    paths.update(_memory_paths())
    paths.update(_graph_and_pipeline_paths())
    paths.update(_cluster_paths())
    paths.update(_key_paths())
    paths.update(_lake_paths())
    _keyed(paths)
    _link(paths)
    return {"openapi": "3.1.0",
            "info": {"title": "Memorose", "version": "1",
                     "description": "Long-term memory lake for AI agents."},
            "components": {"schemas": schemas, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}], "paths": paths}


FORGOTTEN = "{forgotten, cascaded, updated: [{id, kind}], log_index}"
BAD_ID = "an id blank, over 256 characters, or with a control character or line separator"
# Ids in paths and query strings follow the body's rule (api.params): the same schema.
ID = TypeAdapter(Id).json_schema()
QUERY_IDS = {"user_id", "tenant", "stream_id", "after_tenant", "after_id", "cursor"}

# Where one answer feeds the next request (OpenAPI links): what a client does in sequence, and
# what schemathesis' stateful test follows. (path, method): operationId, and per status its links.
OPERATION_IDS = {
    ("/api/v1/events", "post"): "ingestEvent",
    ("/api/v1/events/batch", "post"): "ingestBatch",
    ("/api/v1/events/{event_id}", "get"): "getEvent",
    ("/api/v1/events/{event_id}", "delete"): "forgetEvent",
    ("/api/v1/users/{user_id}/memories", "get"): "listMemories",
    ("/api/v1/forget", "post"): "previewForget",
    ("/api/v1/forget/confirm", "post"): "confirmForget",
    ("/api/v1/admin/keys", "post"): "createKey",
    ("/api/v1/admin/keys/{key_id}", "delete"): "revokeKey",
}
SENT_EVENT = {"event_id": "$response.body#/event_id"}
# A link's requestBody is the whole body (OpenAPI 3.1, Link Object); schemathesis would merge it
# into a body of its own making unless told so.
WHOLE_BODY = {"x-schemathesis": {"merge_body": False}}
LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/events", "post", "201"): {
        "GetEvent": {"operationId": "getEvent", "parameters": SENT_EVENT},
        "ForgetEvent": {"operationId": "forgetEvent", "parameters": SENT_EVENT},
        "ListMemories": {"operationId": "listMemories",
                         "parameters": {"user_id": "$request.body#/user_id"}},
        "PreviewForget": {"operationId": "previewForget", "requestBody": {
            "user_id": "$request.body#/user_id", "query": "$request.body#/content"},
            **WHOLE_BODY}},
    ("/api/v1/events/batch", "post", "201"): {
        "GetFirstEvent": {"operationId": "getEvent",
                          "parameters": {"event_id": "$response.body#/event_ids/0"}}},
    ("/api/v1/forget", "post", "200"): {
        "ConfirmForget": {"operationId": "confirmForget", "requestBody": {
            "token": "$response.body#/token", "ids": ["$response.body#/candidates/0/id"]},
            **WHOLE_BODY}},
    ("/api/v1/admin/keys", "post", "201"): {
        "RevokeKey": {"operationId": "revokeKey",
                      "parameters": {"key_id": "$response.body#/key_id"}}},
}


def _keyed(paths: dict[str, Any]) -> None:
    """Once a node has keys, every route but /health can refuse a request's key: 401 for none
    or an unknown one, 403 for one that does not reach it (the admin key on tenant data, a
    tenant key on an admin route, a read-only key on a write)."""
    refusals = _responses(200, "", _401="missing, unknown or revoked key",
                          _403="the key does not reach this route")
    for path, item in paths.items():
        for method, operation in item.items():
            if path == "/health" or method == "parameters":
                continue
            for status in ("401", "403") if path != "/mcp" else ("401",):
                operation["responses"].setdefault(status, refusals[status])


def _link(paths: dict[str, Any]) -> None:
    for (path, method), operation_id in OPERATION_IDS.items():
        paths[path][method]["operationId"] = operation_id
    for (path, method, status), links in LINKS.items():
        paths[path][method]["responses"][status]["links"] = links


def _path_param(name: str, schema: dict[str, Any] = ID) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": schema}]


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": ID if n in QUERY_IDS else {"type": "string"}}
            for n in names]


def _memory_paths() -> dict[str, Any]:
    page = [{"name": "layer", "in": "query", "schema": {"enum": ["L1", "L2"]}},
            {"name": "limit", "in": "query", "schema": {"type": "integer"}},
            *_query("cursor")]
    return {
        "/api/v1/memories/{memory_id}": {
            "parameters": _path_param("memory_id"),
            "get": _op("One L1 memory or L2 insight, with provenance", 200, "the memory",
                       _400=BAD_ID, _404="unknown memory id"),
            "delete": _op("Forget a memory and what was derived from it", 200, FORGOTTEN,
                          _400=BAD_ID, _404="unknown memory id")},
        "/api/v1/users/{user_id}/memories": {"get": {**_op(
            "A user's memories of one layer, in id order, paged", 200,
            "{memories, next_cursor}", _400="bad user_id, layer, limit or cursor",
            _404="unknown user_id"),
            "parameters": _path_param("user_id") + page}},
        "/api/v1/forget": {"post": _op(
            "Preview a forget by query (changes nothing)", 200,
            "{candidates: [{id, layer, content, score}], token, expires_at}", ForgetQueryIn,
            _404="unknown user_id", **BAD)},
        "/api/v1/forget/confirm": {"post": _op(
            "Forget the confirmed candidates of a preview", 200, FORGOTTEN, ForgetConfirmIn,
            **BAD)},
    }


def _graph_and_pipeline_paths() -> dict[str, Any]:
    return {
        "/api/v1/users/{user_id}/graph": {"get": {**_op(
            "A user's knowledge graph, or the part within N hops of one entity", 200,
            "{entities, relations}", _400="bad user_id or hops", _404="unknown user_id or entity"),
            "parameters": _path_param("user_id") + _query("entity", "hops")}},
        "/api/v1/context": {"post": _op(
            "The best memories for a query, packed into a token budget as prompt-ready text",
            200, "{context, tokens, memories}", ContextIn, _404="unknown user_id", **BAD)},
        "/api/v1/admin/events": {"get": {**_op(
            "Events whose id was made in [from_ms, to_ms), paged (admin)", 200,
            "{events, next}", _400="bad range, after_tenant or after_id",
            _403="admin key required"),
            "parameters": _query("from_ms", "to_ms", "limit", "after_tenant", "after_id")}},
        "/api/v1/admin/derivations": {"get": {**_op(
            "Per derivation, how many memories each ingest day holds (admin)", 200,
            "{kind, derivations}", _400="bad kind", _403="admin key required"),
            "parameters": _query("kind")}},
        "/api/v1/admin/leases": {
            "post": _op("Lease users to a pipeline step, all or none (admin)", 200,
                        "{owner, users, ttl_seconds}", LeaseIn, _403="admin key required",
                        _409="lease_held: another step holds some (named in held)", **BAD),
            "get": _op("The derivation leases in force (admin)", 200, "{leases}",
                       _403="admin key required")},
        "/api/v1/admin/leases/{owner}": {"delete": {**_op(
            "Release every lease of an owner (admin)", 200, "{owner, released}",
            _400="bad owner", _403="admin key required"),
            "parameters": _path_param("owner")}},
    }


def _cluster_paths() -> dict[str, Any]:
    timeout = [{"name": "timeout", "in": "query", "schema": {"type": "number"}}]
    admin = {"_403": "admin key required", "_503": "no quorum / not caught up in time"}
    bad_timeout = {"_400": f"timeout not a number within (0, {WAIT_LIMIT:.0f}]"}
    return {
        "/api/v1/cluster/sync": {"post": {**_op(
            "Wait until this node reflects every write acknowledged before the call", 200,
            "{applied_index, node_id}", _403="admin key required",
            _503="no quorum or timeout", **bad_timeout), "parameters": timeout}},
        "/api/v1/admin/cluster/members": {"post": _op(
            "Add a member by Raft address {address: host:raft_port} (admin)", 201,
            "{members}", MemberIn, **(BODY | {"_400": "bad or known address"}), **admin)},
        "/api/v1/admin/cluster/members/{address}": {"delete": {**_op(
            "Remove a member; a leader hands over first (admin)", 200, "{members}",
            _400="a node cannot remove itself", _404="not a member", **admin),
            "parameters": _path_param("address", {"type": "string"})}},
        "/api/v1/admin/snapshot": {"post": {**_op(
            "Snapshot now and compact this node's Raft log (admin)", 200,
            "{written, snapshot_bytes, log_len, applied_index}", **bad_timeout, **admin),
            "parameters": timeout}},
        "/api/v1/admin/digest": {"get": {**_op(
            "SHA-256 of this replica's RocksDB once caught up (admin)", 200,
            "{digest, applied_index, raft_applied_index, commit_index}", **bad_timeout,
            **admin),
            "parameters": timeout}},
    }


def _key_paths() -> dict[str, Any]:
    key = "{key_id, tenant, read_only, name, created_at, revoked, revoked_at}"
    return {
        "/api/v1/admin/keys": {
            "post": _op("Make a tenant key; its secret is in this answer only (admin)", 201,
                        key[:-1] + ", secret, log_index}", KeyIn,
                        _403="admin key required, or none configured on this node", **BAD),
            "get": _op("Every key made at run time, without secrets (admin)", 200,
                       f"{{keys: [{key}]}}", _403="admin key required")},
        "/api/v1/admin/keys/{key_id}": {"delete": {**_op(
            "Revoke a key: refused on each replica once it applied this (admin)", 200,
            key[:-1] + ", log_index}", _400=BAD_ID, _403="admin key required",
            _404="unknown key id"),
            "parameters": _path_param("key_id")}},
    }


def _lake_paths() -> dict[str, Any]:
    admin = {"_403": "admin key required"}
    return {
        "/api/v1/admin/lake/records": {"get": {**_op(
            "Records of one kind, each with its day, in key order and pages (admin)", 200,
            "{records, next}", _400="bad kind, tenant, limit or cursor", **admin),
            "parameters": _query("kind", "days", "tenant", "after", "limit", "values")}},
        "/api/v1/admin/lake/touched": {"get": {**_op(
            "The (tenant, day) partitions and [tenant, id]s written by log entries in "
            "(after, until] (admin)", 200, "{touched, ids, next_cursor, applied_index}",
            _400="bad range", **admin), "parameters": _query("after", "until", "limit")}},
        "/api/v1/admin/lake/rows": {"post": _op(
            "The current rows of every lake table whose id is one of ids in tenant, read by "
            "key (admin)", 200, "{records}", LakeRowsIn, **BODY, _401="missing or unknown key",
            **admin)},
        "/api/v1/admin/index/census": {"get": _op(
            "Per user and layer: RocksDB against Tantivy and LanceDB on this node, and index "
            "entries with no record (admin)", 200, "{node_id, counts, strays, ...}", **admin)},
        "/api/v1/admin/audit": {"get": _op(
            "The audit report over the lake and this node's index census (admin)", 200,
            "{passed, audits: [{name, blocking, passed, findings, rules}], charts}", **admin)},
    }
