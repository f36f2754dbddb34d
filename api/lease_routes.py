"""Derivation leases (admin): a pipeline step leases the users it derives, so that two runs
overlapping in time never derive one user's memories at once (``node/leases.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api.auth import require_admin
from api.body import read_body
from api.params import path_id
from api.responses import JSONResponse
from api.routes import node_of
from api.schemas import LeaseIn
from memorose_dagster.errors import LeaseHeld

SHOWN = 20  # users a refusal names


async def acquire(request: Request) -> JSONResponse:
    """Lease every user named to the owner (renewing its own leases), or none: 409
    ``lease_held`` naming who holds which."""
    require_admin(request)
    body = await read_body(request, LeaseIn)
    users = [(u.tenant, u.user_id) for u in body.users]
    busy = node_of(request).leases.acquire(body.owner, users, body.ttl_seconds)
    if busy:
        held = [{"tenant": t, "user_id": u, "owner": o}
                for (t, u), o in sorted(busy.items())[:SHOWN]]
        raise LeaseHeld(f"{len(busy)} of the {len(set(users))} users are leased to another "
                        "step: retry once it releases them", held=held, held_count=len(busy))
    return JSONResponse({"owner": body.owner, "users": len(set(users)),
                         "ttl_seconds": body.ttl_seconds})


async def release(request: Request) -> JSONResponse:
    """Drop every lease of an owner (none held is no error)."""
    require_admin(request)
    owner = path_id(request, "owner")
    return JSONResponse({"owner": owner, "released": node_of(request).leases.release(owner)})


async def listing(request: Request) -> JSONResponse:
    """The leases in force: owner and the users it holds."""
    require_admin(request)
    held = node_of(request).leases.held()
    return JSONResponse({"leases": [
        {"owner": owner, "users": [{"tenant": t, "user_id": u} for t, u in users]}
        for owner, users in held.items()]})


ROUTES = [
    Route("/api/v1/admin/leases", acquire, methods=["POST"]),
    Route("/api/v1/admin/leases", listing, methods=["GET"]),
    Route("/api/v1/admin/leases/{owner}", release, methods=["DELETE"]),
]
