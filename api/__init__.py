"""The Memorose HTTP API (Starlette): routes, auth, error handlers. No Dagster here.

``create_app`` is imported on first use: a process that needs only the body checks and schemas
(an ingest worker, ``api.batches``) does not load the node, its indexes and models."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from api.app import create_app
        return create_app
    raise AttributeError(f"module 'api' has no attribute {name!r}")
