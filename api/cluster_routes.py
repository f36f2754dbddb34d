"""Cluster routes: consistent-read barrier, membership, snapshots and replica digests.

Status itself is ``GET /api/v1/cluster/status`` (routes.py), which lists every member.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.auth import require_admin, tenant_of
from api.body import read_body
from api.routes import node_of
from memorose_dagster import cluster
from memorose_dagster.errors import InvalidInput, Unavailable
from memorose_dagster.log.replicated import MemoryLog
from memorose_dagster.node import Node

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
    tenant_of(request)
    node = node_of(request)
    timeout = _timeout(request, node.settings.commit_timeout)
    index = await run_in_threadpool(cluster.read_barrier, node, timeout)
    return JSONResponse({"applied_index": index, "node_id": node.settings.name})


async def add_member(request: Request) -> JSONResponse:
    require_admin(request)
    address = (await read_body(request, MemberIn)).address
    node = node_of(request)
    members = await run_in_threadpool(cluster.add_member, node.log, address,
                                      node.settings.commit_timeout)
    return JSONResponse({"members": members}, status_code=201)


async def remove_member(request: Request) -> JSONResponse:
    require_admin(request)
    node = node_of(request)
    members = await run_in_threadpool(cluster.remove_member, node.log,
                                      request.path_params["address"],
                                      node.settings.commit_timeout)
    return JSONResponse({"members": members})


async def snapshot(request: Request) -> JSONResponse:
    """Write a snapshot now and compact this node's Raft log (it is also done automatically)."""
    require_admin(request)
    node = node_of(request)
    timeout = _timeout(request, 60.0)
    return JSONResponse(await run_in_threadpool(_snapshot, node, timeout))


def _snapshot(node: Node, timeout: float) -> dict:
    path = Path(node.log.conf.fullDumpFile)
    before = path.stat().st_mtime_ns if path.exists() else None
    log_len = cluster.raft_status(node.log)["log_len"]
    node.log.forceLogCompaction()
    deadline = time.monotonic() + timeout
    written = compacted = False
    # The dump is written in one tick and the journal cut at the next one.
    while time.monotonic() < deadline and not (written and compacted):
        time.sleep(0.05)
        written = path.exists() and path.stat().st_mtime_ns != before
        compacted = cluster.raft_status(node.log)["log_len"] < log_len
    status = cluster.raft_status(node.log)
    return {"written": written, "snapshot_bytes": path.stat().st_size if path.exists() else 0,
            "log_len": status["log_len"], "applied_index": status["last_applied"]}


async def digest(request: Request) -> JSONResponse:
    """SHA-256 of this replica's RocksDB, once it has applied all the leader committed."""
    require_admin(request)
    node = node_of(request)
    timeout = _timeout(request, 30.0)
    return JSONResponse(await run_in_threadpool(_digest, node, timeout))


def _wait_caught_up(raft: MemoryLog, timeout: float) -> dict[str, Any]:
    """Wait until this node has applied everything the leader told it is committed."""
    deadline = time.monotonic() + timeout
    while True:
        status = cluster.raft_status(raft)
        leader_commit = status["leader_commit_idx"]
        if (leader_commit is not None and status["last_applied"] >= status["commit_idx"]
                >= leader_commit):
            return status
        if time.monotonic() >= deadline:
            raise Unavailable(f"not caught up within {timeout:.0f}s: applied "
                              f"{status['last_applied']}, leader commit {leader_commit}",
                              leader=cluster.leader_address(raft))
        time.sleep(0.05)


def _digest(node: Node, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = _wait_caught_up(node.log, max(deadline - time.monotonic(), 0.1))
        applied = node.store.applied_index
        value = node.store.digest()
        if node.store.applied_index == applied:  # no write landed while hashing
            return {"node_id": node.settings.name, "digest": value, "applied_index": applied,
                    "raft_applied_index": status["last_applied"],
                    "commit_index": status["commit_idx"]}
        if time.monotonic() > deadline:
            raise Unavailable("writes kept landing while hashing: stop them for a digest")


routes = [
    Route("/api/v1/cluster/sync", sync, methods=["POST"]),
    Route("/api/v1/admin/cluster/members", add_member, methods=["POST"]),
    Route("/api/v1/admin/cluster/members/{address}", remove_member, methods=["DELETE"]),
    Route("/api/v1/admin/snapshot", snapshot, methods=["POST"]),
    Route("/api/v1/admin/digest", digest),
]
