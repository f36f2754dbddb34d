"""Request bodies, validated with pydantic: unknown fields are rejected, ids must be plain text.

What JSON can say but the store cannot keep (NaN, huge integers, lone surrogates, deep nesting)
is refused before these models see a body, in ``api.body``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from memorose_dagster.node.leases import MAX_TTL, MAX_USERS

# Cc: C0 controls (the key separator \x1f among them), DEL and the C1 controls; Zl and Zp:
# U+2028 and U+2029, which end a line in JavaScript and in many log viewers.
NOT_IN_IDS = {"Cc", "Zl", "Zp"}
EARLIEST, LATEST = 0.0, 253402300799.0  # 1970-01-01T00:00:00Z, 9999-12-31T23:59:59Z


ID_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # NOT_IN_IDS, every code point


def _plain_id(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    if ID_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters or line separators")
    return value


def _in_range(value: datetime) -> datetime:
    """Event times become Unix seconds and, downstream, UTC dates: years 1970..9999 only.

    A time without a zone is UTC: read in the node's local time, the same event would be a
    different instant on nodes in different zones."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        seconds = value.timestamp()  # an offset can still carry it past year 9999
    except (OverflowError, ValueError, OSError) as exc:
        raise ValueError("must be within 1970-01-01 and 9999-12-31 (UTC)") from exc
    if not EARLIEST <= seconds <= LATEST:
        raise ValueError("must be within 1970-01-01 and 9999-12-31 (UTC)")
    return value


# _plain_id's rule for the OpenAPI document (and so for generated requests): no Cc, Zl or Zp
# character, and one that is not whitespace.
_NOT_IN_ID = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
ID_PATTERN = f"^[^{_NOT_IN_ID}]*[^\\s{_NOT_IN_ID}][^{_NOT_IN_ID}]*$"
Id = Annotated[StrictStr, Field(min_length=1, max_length=256,
                                json_schema_extra={"pattern": ID_PATTERN}),
               AfterValidator(_plain_id)]
Layer = Literal["L0", "L1", "L2"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A ULID is 128 bits in 26 base-32 digits (130 bits): the first digit is at most 7.
EventId = Annotated[StrictStr, Field(pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", description=(
    "optional, a ULID the client made: a resend with the same id stores nothing new"))]
EventTime = Annotated[datetime, AfterValidator(_in_range)]


class EventIn(Strict):
    event_id: EventId | None = None
    user_id: Id
    stream_id: Id
    content: Annotated[StrictStr, Field(min_length=1)]
    content_type: Annotated[StrictStr, Field(min_length=1, max_length=128)] = "text"
    timestamp: EventTime | None = Field(default=None, description=(
        "ISO 8601 (UTC without a zone) or Unix seconds, within 1970..9999 UTC; the node's "
        "receive time if absent"))
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
    min_relevance: Annotated[float, Field(ge=0.0, le=1.0)] = Field(default=0.0, description=(
        "leave out results whose `relevance` (0..1, calibrated: how likely the result answers "
        "the question) is below this"))


class RetrieveIn(QueryIn):
    top_k: Annotated[int, Field(ge=1, le=100, strict=True)] = 10
    consistent: StrictBool = Field(default=False, description=(
        "reflect every write acknowledged before this request, on any node (one Raft round)"))
    explain: StrictBool = Field(default=False, description=(
        "add a `why` to each result: BM25 and vector signals, graph expansion, the fused score "
        "and the ranking's factors (layer, superseded, importance, time, graph, speaker)"))


class ContextIn(QueryIn):
    max_tokens: Annotated[int, Field(ge=16, le=32_000, strict=True)] = 1000


class CommitIn(Strict):
    records: Annotated[list[dict[str, Any]], Field(min_length=1)]


class LakeRowsIn(Strict):
    """Ids of one tenant whose current lake rows (of every table) are wanted."""

    tenant: Id
    ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]


class LeaseUser(Strict):
    tenant: Id = "default"
    user_id: Id


class UsersIn(Strict):
    """Users a pipeline step asks about (their last events' log indexes)."""

    users: Annotated[list[LeaseUser], Field(min_length=1, max_length=MAX_USERS)]


class LeaseIn(Strict):
    """A pipeline step's lease on the users it derives: all of them, or none while another
    step holds any (``node/leases.py``). Sent again by the same owner, it renews."""

    owner: Id
    users: Annotated[list[LeaseUser], Field(min_length=1, max_length=MAX_USERS)]
    ttl_seconds: Annotated[float, Field(gt=0, le=MAX_TTL)] = 120.0


class CandidatesIn(Strict):
    """A consolidator run's new memories (contents, ids) and events, for one user."""

    user_id: Id
    tenant: Id = "default"
    contents: list[StrictStr] = []
    ids: list[Id] = []
    event_ids: list[Id] = []
