"""The Starlette application factory."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from api import (
    admission,
    audit_routes,
    batches,
    cluster_routes,
    collector,
    graph_routes,
    handlers,
    key_routes,
    lake_routes,
    lease_routes,
    memory_routes,
    openapi,
    routes,
)
from api.dashboard import make_routes as dashboard_routes
from api.dashboard import openapi_paths as dashboard_paths
from api.mcp_server import McpEndpoint, mcp_running
from api.responses import JSONResponse
from memorose_dagster.errors import MemoroseError
from memorose_dagster.models import blas
from memorose_dagster.node.node import Node, StoreClosed
from memorose_dagster.settings import Settings


def create_app(settings: Settings | None = None, node: Node | None = None) -> Starlette:
    """An app serving ``node`` (or a node it starts and stops itself from ``settings``)."""
    settings = settings or (node.settings if node else Settings.from_env())
    document = openapi.build()
    document["paths"].update(dashboard_paths())
    load = admission.Load()

    async def openapi_json(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = node is None
        app.state.node = node or Node(settings)
        app.state.node.requests_under_way = lambda: load.inflight > 0
        app.state.node.wait_ready()
        if own:  # the process serves this node alone (``memorose serve``), not an embedding app
            # The ingest workers start beside the node, not with its first large batch.
            threading.Thread(target=app.state.ingest.start, name="memorose-ingest-start",
                             daemon=True).start()
            # What lives as long as the process leaves the collector's reach (collector.py):
            # what the start loaded, what the warm-up decodes, what survives a full collection.
            gc.collect()
            gc.freeze()
            stop_freezing = collector.freeze_survivors()
            if app.state.node.warmer is not None:
                threading.Thread(target=collector.freeze_as_it_warms, args=(app.state.node,),
                                 name="memorose-freeze", daemon=True).start()
            # A retrieve's vector search on one BLAS thread: OpenBLAS's worker otherwise spins
            # between searches and takes a core from every other request (models/blas.py).
            blas.one_thread()
        try:
            async with mcp_running(app):
                yield
        finally:
            app.state.ingest.close()
            if own:
                app.state.node.close()
                stop_freezing()

    app = Starlette(
        routes=[
            Route("/health", routes.health),
            Route("/api/v1/openapi.json", openapi_json),
            Route("/api/v1/events", routes.ingest_event, methods=["POST"]),
            Route("/api/v1/events/batch", routes.ingest_batch, methods=["POST"]),
            Route("/api/v1/events/{event_id}", routes.get_event),
            Route("/api/v1/retrieve", routes.retrieve, methods=["POST"]),
            Route("/api/v1/cluster/status", routes.cluster_status),
            Route("/api/v1/admin/log", routes.read_log),
            Route("/api/v1/admin/log/counts", routes.log_counts),
            Route("/api/v1/admin/commit", routes.commit, methods=["POST"]),
            Route("/api/v1/admin/records", routes.list_records),
            Route("/api/v1/admin/candidates", routes.l1_candidates, methods=["POST"]),
            Route("/api/v1/admin/users", routes.list_users),
            Route("/api/v1/admin/users/last-events", routes.last_events, methods=["POST"]),
            Route("/api/v1/admin/derivations", routes.derivations),
            Route("/api/v1/admin/events", routes.events_between),
            *memory_routes.ROUTES,
            Route("/api/v1/users/{user_id}/graph", graph_routes.user_graph),
            Route("/api/v1/context", graph_routes.context, methods=["POST"]),
            *cluster_routes.routes,
            *key_routes.ROUTES,
            *lake_routes.ROUTES,
            *lease_routes.ROUTES,
            *audit_routes.ROUTES,
            Route("/mcp", McpEndpoint()),
            *dashboard_routes(),
        ],
        lifespan=lifespan,
        middleware=[Middleware(admission.Admission, settings=settings, load=load)],
        exception_handlers={
            MemoroseError: handlers.memorose_error,
            ValidationError: handlers.validation_error,
            HTTPException: handlers.http_error,
            StoreClosed: handlers.store_closed,
            Exception: handlers.unexpected_error,
        },
    )
    app.state.settings = settings
    app.state.load = load
    app.state.ingest = batches.IngestPool(
        batches.default_workers() if settings.ingest_workers is None else settings.ingest_workers,
        timeout=settings.commit_timeout)
    return app
