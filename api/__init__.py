"""The Memorose HTTP API (Starlette): routes, auth, error handlers. No Dagster here."""

from api.app import create_app

__all__ = ["create_app"]
