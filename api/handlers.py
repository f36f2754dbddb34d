"""The one place where errors become HTTP responses: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.responses import JSONResponse
from memorose_dagster.errors import MemoroseError

log = logging.getLogger("memorose.api")


def error_response(status: int, code: str, message: str, **details: object) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=status)


def memorose_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MemoroseError)
    return error_response(exc.status, exc.code, exc.message, **exc.details)


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()[:20]]
    message = f"{field}: {first['msg']}" if field else first["msg"]
    return error_response(400, "invalid_input", message, field=field, problems=problems)


def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), exc.detail)


def store_closed(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(503, "unavailable", "this node's store is being replaced by a snapshot "
                          "from the leader (or the node is stopping): retry, or ask another node")


def unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")
