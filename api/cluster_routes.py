"""Cluster routes: consistent-read barrier, membership, snapshots and replica digests.

Status itself is ``GET /api/v1/cluster/status`` (routes.py), which lists every member.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require_admin
from api.body import read_body
from api.responses import JSONResponse
from api.routes import node_of
from memorose_dagster.errors import InvalidInput

WAIT_LIMIT = 120.0  # seconds: the longest wait a caller may ask for


def _timeout(request: Request, default: float) -> float:
    raw = request.query_params.get("timeout", str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInput("timeout must be a number of seconds", field="timeout") from exc
    if not 0 < value <= WAIT_LIMIT:
        raise InvalidInput(f"timeout must be within (0, {WAIT_LIMIT:.0f}]", field="timeout")
    return value


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: StrictStr = Field(description="the member's host:raft_port")


async def sync(request: Request) -> JSONResponse:
    """Wait until this node reflects every write acknowledged before the call (any member).

    A read sent to the same node afterwards is consistent (ZooKeeper's ``sync`` + read).
    """
    require_admin(request)
    node = node_of(request)
    timeout = _timeout(request, node.settings.commit_timeout)
    index = await run_in_threadpool(node.read_barrier, timeout)
    return JSONResponse({"applied_index": index, "node_id": node.settings.name})


async def add_member(request: Request) -> JSONResponse:
    require_admin(request)
    address = (await read_body(request, MemberIn)).address
    node = node_of(request)
    members = await run_in_threadpool(node.add_member, address)
    return JSONResponse({"members": members}, status_code=201)


async def remove_member(request: Request) -> JSONResponse:
    require_admin(request)
    node = node_of(request)
    members = await run_in_threadpool(node.remove_member, request.path_params["address"])
    return JSONResponse({"members": members})


async def snapshot(request: Request) -> JSONResponse:
    """Write a snapshot now and compact this node's Raft log (it is also done automatically)."""
    require_admin(request)
    node = node_of(request)
    timeout = _timeout(request, 60.0)
    return JSONResponse(await run_in_threadpool(node.snapshot, timeout))


async def digest(request: Request) -> JSONResponse:
    """SHA-256 of this replica's RocksDB, once it has applied all the leader committed."""
    require_admin(request)
    node = node_of(request)
    timeout = _timeout(request, 30.0)
    return JSONResponse(await run_in_threadpool(node.digest, timeout))


routes = [
    Route("/api/v1/cluster/sync", sync, methods=["POST"]),
    Route("/api/v1/admin/cluster/members", add_member, methods=["POST"]),
    Route("/api/v1/admin/cluster/members/{address}", remove_member, methods=["DELETE"]),
    Route("/api/v1/admin/snapshot", snapshot, methods=["POST"]),
    Route("/api/v1/admin/digest", digest),
]
