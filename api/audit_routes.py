"""``GET /api/v1/admin/audit``: the audit report over this node's lake and index census."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from api.auth import require_admin
from api.responses import JSONResponse
from api.routes import node_of
from memorose_dagster.lake.report import build_report


def lake_root(home: Path) -> Path:
    """``$MEMOROSE_LAKE``, else the lake in the node's data directory."""
    return Path(os.environ["MEMOROSE_LAKE"]) if os.environ.get("MEMOROSE_LAKE") else home / "lake"


async def audit(request: Request) -> JSONResponse:
    """Every audit over the lake as last written, with this node's index census."""
    require_admin(request)
    node = node_of(request)

    def report() -> dict[str, Any]:
        census = node.index_census()
        return build_report(lake_root(node.settings.home), [census], census["applied_index"])

    return JSONResponse(await run_in_threadpool(report))


ROUTES = [Route("/api/v1/admin/audit", audit)]
