"""Request bodies, validated with pydantic: unknown fields are rejected, ids must be plain text."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr


def _plain_id(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    if any(ord(ch) < 32 for ch in value):
        raise ValueError("must not contain control characters")
    return value


Id = Annotated[StrictStr, Field(min_length=1, max_length=256), AfterValidator(_plain_id)]
Layer = Literal["L0", "L1", "L2"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


EventId = Annotated[StrictStr, Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description=(
    "optional, a ULID the client made: a resend with the same id stores nothing new"))]


class EventIn(Strict):
    event_id: EventId | None = None
    user_id: Id
    stream_id: Id
    content: Annotated[StrictStr, Field(min_length=1)]
    content_type: Annotated[StrictStr, Field(min_length=1, max_length=128)] = "text"
    timestamp: datetime | None = Field(
        default=None, description="ISO 8601 or Unix seconds; the node's receive time if absent")
    metadata: dict[str, Any] = Field(default_factory=dict,
                                     description="Any JSON object, returned as sent")


class EventBatchIn(Strict):
    events: Annotated[list[EventIn], Field(min_length=1)]


class QueryIn(Strict):
    """What to look for, for whom, and where: shared by retrieve and context."""

    user_id: Id
    query: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    stream_id: Id | None = None
    layers: Annotated[list[Layer], Field(min_length=1)] | None = None


class RetrieveIn(QueryIn):
    top_k: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    consistent: bool = Field(default=False, description=(
        "reflect every write acknowledged before this request, on any node (one Raft round)"))


class ContextIn(QueryIn):
    max_tokens: Annotated[int, Field(ge=16, le=32_000, strict=True)] = 1000


class CommitIn(Strict):
    records: Annotated[list[dict[str, Any]], Field(min_length=1)]
