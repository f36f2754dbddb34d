"""API keys: who is calling, and what that key may reach.

- A tenant key reaches its own tenant's data and nothing else; a read-only one cannot write or
  forget. Tenant keys come from ``MEMOROSE_API_KEYS`` (bootstrap) or are made at run time
  (``/api/v1/admin/keys``): those are ``mr_<key_id>_<random>``, stored as a SHA-256 through
  the Raft log and looked up in this replica's RocksDB on every request, so a revoke holds on
  each replica from the moment it is applied there.
- The admin key (``MEMOROSE_ADMIN_KEY``) reaches the admin routes (``/api/v1/admin/*``) and
  cluster status and sync; it is not a tenant key.
- With no key configured and none made at run time the node is open: every request is served
  as the ``default`` tenant. ``Settings.validate`` allows that on a loopback bind only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from starlette.requests import Request

from memorose_dagster.errors import Forbidden, Unauthorized
from memorose_dagster.records import DEFAULT_TENANT

RUNTIME_KEY = re.compile(r"^mr_([0-9A-HJKMNP-TV-Z]{26})_[A-Za-z0-9_-]{32,}$")
# What a read-only key may send besides GET: reads that happen to carry a JSON body.
READ_POSTS = frozenset({"/api/v1/retrieve", "/api/v1/context"})


@dataclass(frozen=True, slots=True)
class Caller:
    role: str  # "open" (no keys anywhere), "tenant" or "admin"
    tenant: str = DEFAULT_TENANT
    read_only: bool = False


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_secret(key_id: str) -> str:
    """A new key's secret: its id (so a request finds the key with one read) and 256 random
    bits. Shown once; only its hash is stored."""
    return f"mr_{key_id}_{secrets.token_urlsafe(32)}"


def _presented_key(request: Request) -> str | None:
    """The key sent, "" when a key header came blank, None when none came."""
    header = request.headers.get("authorization")
    if header is not None and header[:7].lower() in ("bearer ", "bearer"):
        return header[7:].strip()
    key = request.headers.get("x-api-key")
    return None if key is None else key.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def caller(request: Request) -> Caller:
    """Who sent ``request``: 401 for a missing, blank, unknown or revoked key."""
    settings, node = request.app.state.settings, request.app.state.node
    if not settings.keys_configured and not node.has_api_keys():
        return Caller("open")
    key = _presented_key(request)
    if key is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not key:
        raise Unauthorized("empty API key: send 'Authorization: Bearer <key>'")
    digest = hash_secret(key)
    if settings.admin_key and _same(hash_secret(settings.admin_key), digest):
        return Caller("admin")
    for known, tenant in settings.api_keys.items():
        if _same(hash_secret(known), digest):
            return Caller("tenant", tenant)
    match = RUNTIME_KEY.match(key)
    stored = node.api_key(match.group(1)) if match else None
    if stored is None or not _same(stored["secret_sha256"], digest):
        raise Unauthorized("unknown API key")
    if stored["revoked"]:
        raise Unauthorized("this API key was revoked")
    return Caller("tenant", stored["key_tenant"], stored["read_only"])


def _writes(request: Request) -> bool:
    return request.method not in ("GET", "HEAD") and request.url.path not in READ_POSTS


def tenant_of(request: Request) -> str:
    """The tenant a data route acts for: a tenant key's own (403 for the admin key, and for a
    read-only key on a write), or ``default`` on an open node."""
    who = caller(request)
    if who.role == "admin":
        raise Forbidden("the admin key does not reach tenant data: use a tenant key "
                        "(MEMOROSE_API_KEYS, or one made with 'memorose keys create')")
    if who.read_only and _writes(request):
        raise Forbidden("this API key is read-only: it can retrieve and read, not write "
                        "or forget")
    return who.tenant


def require_admin(request: Request) -> None:
    """Admin routes, cluster status and sync: the admin key, or anyone on an open node."""
    if caller(request).role == "tenant":
        raise Forbidden("this endpoint needs the admin key (MEMOROSE_ADMIN_KEY), "
                        "not a tenant key")
