"""Memorose as an MCP server (the official ``mcp`` SDK's low-level ``Server``).

``build_server`` makes the server from a way to reach a node: on a node, streamable HTTP at
``/mcp`` (``McpEndpoint``, started by the app's lifespan with ``mcp_running``) calls the node's own
endpoints in this process, as the key the MCP request carries (``NodeBackend``), so a key
reaches exactly what it reaches over REST; ``memorose mcp`` serves the same tools over stdio
and reaches a node over HTTP with the Python client.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from api import handlers
from api.auth import caller
from api.mcp_tools import RESOURCES, TOOLS, Backend, ToolFailure, read_resource, run_tool
from memorose_dagster.errors import MemoroseError

INSTRUCTIONS = ("Memorose is this user's long-term memory. Call `recall` (or `context`) before "
                "answering questions about the user's past, preferences or plans; `remember` "
                "what is worth keeping; forget in two steps (forget_preview, forget_confirm).")
READ_ONLY = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)


def _tool(name: str) -> types.Tool:
    tool = TOOLS[name]
    annotations = READ_ONLY if not tool.writes else types.ToolAnnotations(
        read_only_hint=False, destructive_hint=name == "forget_confirm", open_world_hint=False)
    return types.Tool(name=name, description=tool.description,
                      input_schema=tool.schema.model_json_schema(), annotations=annotations)


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def build_server(backend_of: Callable[[ServerRequestContext], Backend]) -> Server:
    """The MCP server: the tools and resources of ``api.mcp_tools`` over ``backend_of(ctx)``."""

    async def list_tools(_ctx: ServerRequestContext, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(name) for name in TOOLS])

    async def call_tool(ctx: ServerRequestContext,
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            result = await run_tool(backend_of(ctx), params.name, params.arguments)
        except ToolFailure as failure:  # the API's {error: {code, message, field}}, as text
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=failure.text())], is_error=True,
                structured_content={"status": failure.status, **failure.body})
        return types.CallToolResult(content=[types.TextContent(type="text", text=_json(result))],
                                    structured_content=result)

    async def list_resources(_ctx: ServerRequestContext,
                             _params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[])

    async def list_templates(_ctx: ServerRequestContext,
                             _params: Any) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template=uri, name=name, description=description,
                                   mime_type="application/json")
            for uri, (name, description) in RESOURCES.items()])

    async def read(ctx: ServerRequestContext,
                   params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            data = await read_resource(backend_of(ctx), uri)
        except ToolFailure as failure:
            code = types.INVALID_PARAMS if failure.status in (400, 404) else types.INTERNAL_ERROR
            raise MCPError(code, failure.text(), data=failure.body) from failure
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type="application/json", text=_json(data))])

    return Server("memorose", instructions=INSTRUCTIONS, on_list_tools=list_tools,
                  on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read)


class NodeBackend:
    """The node's own endpoints, called in this process as the MCP HTTP request's key: the
    route that serves a path over REST serves it here, with its validation, limits, tenant
    scoping and error handlers."""

    def __init__(self, request: Request | None):
        if request is None:
            raise ToolFailure.of(500, "internal", "an MCP call without its HTTP request")
        self._request = request

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        path, _, query = path.partition("?")
        raw = b"" if body is None else json.dumps(body).encode()
        headers = [(k, v) for k, v in self._request.scope["headers"]
                   if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode())]
        scope = {**self._request.scope, "method": method, "path": unquote(path),
                 "raw_path": path.encode(), "query_string": query.encode(), "headers": headers}
        app: Starlette = scope["app"]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        request = Request(scope, receive)
        try:
            response = await _endpoint(app, scope)(request)
        except Exception as exc:  # translated by the app's own handlers, as over REST
            response = await _handled(app, request, exc)
            raise ToolFailure(response.status_code, json.loads(response.body)) from exc
        return json.loads(response.body)


def _endpoint(app: Starlette, scope: dict[str, Any]) -> Callable[[Request], Any]:
    for route in app.router.routes:
        if isinstance(route, Route):
            match, child = route.matches(scope)
            if match is Match.FULL:
                scope.update(child)
                return route.endpoint
    raise ToolFailure.of(404, "not_found", f"no route for {scope['method']} {scope['path']}")


async def _handled(app: Starlette, request: Request, exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        handler = app.exception_handlers.get(kind)
        if handler is not None:
            response = handler(request, exc)
            return await response if inspect.isawaitable(response) else response
    raise exc


class McpEndpoint:
    """``/mcp``: streamable HTTP. A request without a valid key is refused (401) as on every
    data route; each tool call is then scoped by that key like its REST endpoint."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            caller(request)
        except MemoroseError as exc:
            await handlers.memorose_error(request, exc)(scope, receive, send)
            return
        await scope["app"].state.mcp(scope, receive, _json_errors(send))


_ERROR_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed",
                406: "not_acceptable", 415: "unsupported_media_type"}


def _json_errors(send: Send) -> Send:
    """The SDK answers a request it cannot take (wrong content type, not JSON-RPC) in plain
    text; every Memorose error is ``{"error": {code, message}}``, so rewrite those answers."""
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            kind = dict(message.get("headers", [])).get(b"content-type", b"")
            if message["status"] >= 400 and not kind.startswith(b"application/json"):
                held["start"], held["body"] = message, b""
                return
        elif "start" in held and message["type"] == "http.response.body":
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            status = held["start"]["status"]
            text = held["body"].decode(errors="replace").strip() or f"HTTP {status}"
            body = json.dumps({"error": {"code": _ERROR_CODES.get(status, "http_error"),
                                         "message": text}}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


@contextlib.asynccontextmanager
async def mcp_running(app: Starlette) -> AsyncIterator[None]:
    """Run the MCP session manager for ``app``'s lifespan (a new one each time it starts).
    Stateless and JSON: any node of a cluster can answer any MCP request."""
    server = build_server(lambda ctx: NodeBackend(ctx.request))
    server.streamable_http_app(stateless_http=True, json_response=True,
                               host=app.state.settings.host)
    app.state.mcp = StreamableHTTPASGIApp(server.session_manager)
    async with server.session_manager.run():
        yield
