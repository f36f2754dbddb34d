"""``memorose mcp``: the MCP server over stdio, for desktop agents. It reaches a node over HTTP
(``MEMOROSE_URL``, one or more URLs) with a tenant key (``MEMOROSE_API_KEY``)."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.stdio import stdio_server

from api.mcp_server import build_server
from api.mcp_tools import ToolFailure
from memorose_client import AsyncMemoroseClient, MemoroseAPIError, MemoroseConnectionError


class ClientBackend:
    """The tools' API calls over HTTP, with the client's failover across nodes."""

    def __init__(self, client: AsyncMemoroseClient):
        self._client = client

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return await self._client.request(method, path, body)
        except MemoroseAPIError as exc:
            raise ToolFailure(exc.status, exc.body if "error" in exc.body else {
                "error": {"code": exc.code, "message": exc.message}}) from exc
        except MemoroseConnectionError as exc:
            raise ToolFailure.of(503, "unavailable", str(exc)) from exc


def serve_stdio(url: str, api_key: str | None) -> int:
    """Serve MCP on stdin/stdout until the client closes them (logs go to stderr)."""
    anyio.run(_serve, url, api_key)
    return 0


async def _serve(url: str, api_key: str | None) -> None:
    async with AsyncMemoroseClient(url, api_key=api_key) as client:
        backend = ClientBackend(client)
        server = build_server(lambda _ctx: backend)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
