"""Key management (admin): make, list and revoke tenant keys at run time.

A key is an ``apikey`` record committed through the Raft log, so every replica holds it; the
secret is returned once, at creation, and only its SHA-256 is stored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictStr, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import hash_secret, mint_secret, require_admin
from api.body import read_body
from api.params import path_id
from api.responses import JSONResponse
from api.routes import node_of
from api.schemas import Strict
from memorose_dagster.errors import Forbidden, NotFound
from memorose_dagster.ids import new_id
from memorose_dagster.records import ApiKey
from memorose_dagster.settings import tenant_problem


class KeyIn(Strict):
    tenant: StrictStr = Field(description="the tenant the key reaches")
    read_only: StrictBool = Field(default=False,
                                  description="retrieve and read only: no ingest or forget")
    name: Annotated[StrictStr, Field(max_length=256)] = Field(
        default="", description="a label for people (who holds the key, what for)")

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        problem = tenant_problem(value)
        if problem:
            raise ValueError(f"the tenant {problem}")
        return value


def _public(key: dict[str, Any]) -> dict[str, Any]:
    return {"key_id": key["id"], "tenant": key["key_tenant"], "read_only": key["read_only"],
            "name": key["name"], "created_at": key["created_at"], "revoked": key["revoked"],
            "revoked_at": key["revoked_at"] or None}


async def create_key(request: Request) -> JSONResponse:
    """Make a tenant key; the answer holds its secret, shown this once."""
    require_admin(request)
    if not request.app.state.settings.admin_key:
        # Once a key exists the node is no longer open, and listing, revoking and the pipeline
        # then need an admin key: without one they would be locked out.
        raise Forbidden("set MEMOROSE_ADMIN_KEY (and restart) before making keys: once a key "
                        "exists the node is no longer open, and the admin key is what lists "
                        "and revokes keys and what the pipeline uses")
    body = await read_body(request, KeyIn)
    now = time.time()
    key_id = new_id(int(now * 1000))
    secret = mint_secret(key_id)
    key = ApiKey(id=key_id, key_tenant=body.tenant, secret_sha256=hash_secret(secret),
                 read_only=body.read_only, name=body.name, created_at=now)
    index = await run_in_threadpool(node_of(request).save_api_key, key)
    return JSONResponse({**_public(key.to_dict()), "secret": secret, "log_index": index},
                        status_code=201)


async def list_keys(request: Request) -> JSONResponse:
    """Every key made at run time (never a secret); keys from MEMOROSE_API_KEYS are not listed."""
    require_admin(request)
    keys = await run_in_threadpool(node_of(request).api_keys)
    return JSONResponse({"keys": [_public(k) for k in keys]})


async def revoke_key(request: Request) -> JSONResponse:
    """Revoke a key: every replica refuses it once it has applied the revoke (this one at once).
    Revoking a revoked key changes nothing."""
    require_admin(request)
    node, key_id = node_of(request), path_id(request, "key_id")
    stored = node.api_key(key_id)
    if stored is None:
        raise NotFound(f"no API key {key_id!r}", field="key_id")
    index = stored["log_index"]
    if not stored["revoked"]:
        key = ApiKey.from_dict({**stored, "revoked": True, "revoked_at": time.time()})
        index = await run_in_threadpool(node.save_api_key, key)
        stored = key.to_dict()
    return JSONResponse({**_public(stored), "log_index": index})


ROUTES = [
    Route("/api/v1/admin/keys", create_key, methods=["POST"]),
    Route("/api/v1/admin/keys", list_keys, methods=["GET"]),
    Route("/api/v1/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
