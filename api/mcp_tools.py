"""The Memorose MCP tools and resources, whatever carries them.

Each tool is one REST call: its arguments are the request body of that endpoint (validated
with the same pydantic schemas, so a bad argument gets the same ``{code, message, field}`` as
over HTTP), and a ``Backend`` sends the call: in-process on a node (``api.mcp_server``) or over
HTTP with the Python client (``memorose mcp``). Errors come back as the API's JSON body.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import quote, unquote, urlencode

from pydantic import BaseModel, Field, StrictStr, ValidationError

from api import handlers
from api.memory_routes import ForgetConfirmIn, ForgetQueryIn
from api.schemas import ContextIn, EventBatchIn, Id, RetrieveIn, Strict
from memorose_dagster.ids import new_id

RECENT = 50  # memories a user's resource shows, newest first


class ToolFailure(Exception):
    """A call the API refused: ``body`` is its JSON, ``{"error": {code, message, field?}}``."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(body["error"]["message"])
        self.status, self.body = status, body

    @classmethod
    def of(cls, status: int, code: str, message: str) -> ToolFailure:
        return cls(status, {"error": {"code": code, "message": message}})

    def text(self) -> str:
        return json.dumps({"status": self.status, **self.body})


class Backend(Protocol):
    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of one API call, or ``ToolFailure``."""


class GraphIn(Strict):
    user_id: Id
    entity: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None
    hops: Annotated[int, Field(ge=0, le=3, strict=True)] = 1


class MemoriesIn(Strict):
    user_id: Id
    layer: Literal["L1", "L2"] = "L1"
    cursor: Annotated[StrictStr, Field(max_length=256)] | None = None
    limit: Annotated[int, Field(ge=1, le=500, strict=True)] = 50


def _user(user_id: str, rest: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"/api/v1/users/{quote(user_id, safe='')}/{rest}" + (f"?{query}" if query else "")


def _remember(args: dict[str, Any], _model: BaseModel) -> tuple[str, str, Any]:
    # Named here, before the first attempt: a resend after a lost answer is stored once.
    events = [{"event_id": new_id(), **e} for e in args["events"]]
    return "POST", "/api/v1/events/batch", {"events": events}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: type[BaseModel]
    call: Callable[[dict[str, Any], Any], tuple[str, str, Any]]
    writes: bool = False


TOOLS = {t.name: t for t in [
    Tool("remember", "Store one or more events (chat turns, notes, tool results) in a user's "
         "long-term memory; each is committed before the answer. Returns their event ids.",
         EventBatchIn, _remember, writes=True),
    Tool("recall", "Retrieve what Memorose knows about a user that is relevant to a query: "
         "events (L0), memories (L1) and insights (L2), each with provenance (the source "
         "events and their metadata).",
         RetrieveIn, lambda a, _m: ("POST", "/api/v1/retrieve", a)),
    Tool("context", "The best memories for a query as prompt-ready text within max_tokens.",
         ContextIn, lambda a, _m: ("POST", "/api/v1/context", a)),
    Tool("graph", "A user's knowledge graph (entities and relations with source events), or "
         "the part within `hops` of one entity.",
         GraphIn, lambda _a, m: ("GET", _user(m.user_id, "graph", entity=m.entity, hops=m.hops),
                                 None)),
    Tool("memories", "One page of a user's memories (L1) or insights (L2), oldest first; "
         "pass next_cursor back as cursor for the next page.",
         MemoriesIn, lambda _a, m: ("GET", _user(m.user_id, "memories", layer=m.layer,
                                                 cursor=m.cursor, limit=m.limit), None)),
    Tool("forget_preview", "Step one of forgetting by query: the memories that would be "
         "forgotten and a token. Removes nothing; confirm with forget_confirm.",
         ForgetQueryIn, lambda a, _m: ("POST", "/api/v1/forget", a), writes=True),
    Tool("forget_confirm", "Step two: forget the chosen ids of a preview (with its token), and "
         "everything derived only from them. Cannot be undone.",
         ForgetConfirmIn, lambda a, _m: ("POST", "/api/v1/forget/confirm", a), writes=True),
]}


def validation_failure(exc: ValidationError) -> ToolFailure:
    """The 400 the HTTP API answers for the same arguments (``api.handlers`` makes it)."""
    response = handlers.validation_error(None, exc)  # type: ignore[arg-type]
    return ToolFailure(response.status_code, json.loads(response.body))


async def run_tool(backend: Backend, name: str, arguments: dict[str, Any] | None) -> Any:
    """Validate ``arguments`` like the endpoint does, then make its call."""
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolFailure.of(404, "not_found", f"no tool {name!r}; tools: {', '.join(TOOLS)}")
    args = arguments or {}
    try:
        model = tool.schema.model_validate(args)
    except ValidationError as exc:
        raise validation_failure(exc) from exc
    method, path, body = tool.call(args, model)
    return await backend.call(method, path, body)


RESOURCES = {
    "memorose://users/{user_id}/memories": ("memories", "A user's most recent memories (L1), "
                                            "newest first, with provenance"),
    "memorose://users/{user_id}/insights": ("insights", "A user's most recent insights (L2), "
                                            "newest first, with members and provenance"),
    "memorose://memories/{memory_id}": ("memory", "One memory or insight by id"),
}
USER_URI = re.compile(r"^memorose://users/(?P<user>[^/]+)/(?P<what>memories|insights)$")
MEMORY_URI = re.compile(r"^memorose://memories/(?P<id>[^/]+)$")


async def read_resource(backend: Backend, uri: str) -> Any:
    """The JSON a resource URI names, or ``ToolFailure`` (404 for an unknown URI)."""
    if match := MEMORY_URI.match(uri):
        return await backend.call("GET", f"/api/v1/memories/{quote(unquote(match['id']), safe='')}")
    match = USER_URI.match(uri)
    if match is None:
        raise ToolFailure.of(404, "not_found", f"no resource {uri!r}; resources: "
                             + ", ".join(RESOURCES))
    user_id, layer = unquote(match["user"]), "L1" if match["what"] == "memories" else "L2"
    recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
    cursor = None
    while True:  # pages come oldest first: keep the last ones
        page = await backend.call("GET", _user(user_id, "memories", layer=layer, cursor=cursor,
                                               limit=500))
        recent.extend(page["memories"])
        cursor = page["next_cursor"]
        if cursor is None:
            return {"user_id": user_id, "layer": layer, "memories": list(reversed(recent))}
