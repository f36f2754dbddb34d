"""API keys: each key reaches exactly one tenant; the admin key reaches the pipeline endpoints.

With no keys configured the node is open and everything lands in the default tenant: the
embedded mode, meant for a node bound to 127.0.0.1. There is no default key.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from memorose_dagster.errors import Forbidden, Unauthorized
from memorose_dagster.records import DEFAULT_TENANT


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def tenant_of(request: Request) -> str:
    settings = request.app.state.settings
    if not settings.api_keys and not settings.admin_key:
        return DEFAULT_TENANT
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    for known, tenant in settings.api_keys.items():
        if hmac.compare_digest(known, key):
            return tenant
    if settings.admin_key and hmac.compare_digest(settings.admin_key, key):
        return DEFAULT_TENANT
    raise Unauthorized("unknown API key")


def require_admin(request: Request) -> None:
    settings = request.app.state.settings
    if not settings.api_keys and not settings.admin_key:
        return
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not settings.admin_key or not hmac.compare_digest(settings.admin_key, key):
        raise Forbidden("this endpoint needs the admin key (MEMOROSE_ADMIN_KEY)")
