"""What the client raises: an API error with the node's ``{code, message}``, or no node."""

from __future__ import annotations

from typing import Any

import httpx


class MemoroseAPIError(Exception):
    """The API answered with an error: ``status``, ``code``, ``message`` (and ``field`` when
    the node named one) from its JSON body."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body

    @property
    def field(self) -> str | None:
        return (self.body.get("error") or {}).get("field")


class MemoroseConnectionError(Exception):
    """No node could be reached."""


def api_error(response: httpx.Response) -> MemoroseAPIError:
    try:
        body = response.json()
        error = body["error"]
        return MemoroseAPIError(response.status_code, error["code"], error["message"], body)
    except (ValueError, KeyError, TypeError):
        return MemoroseAPIError(response.status_code, "http_error", response.text[:500], {})
