"""The record types every layer shares, and their byte encoding.

Records travel through the Raft log and sit in RocksDB as msgpack maps (never pickle). Each
record has a ``kind``; the state machine dispatches on it. L0 events come from the API, every
other kind is derived (by the pipeline) and committed back through the log.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import msgpack
import numpy as np

DEFAULT_TENANT = "default"
SYSTEM_TENANT = "_system"  # holds records that belong to no tenant (API keys); never a key's tenant

_SHARED = frozenset({str, int, float, bool, bytes, type(None)})  # immutable: not copied


def _copied(value: Any) -> Any:
    """``value`` as ``dataclasses.asdict`` gives it, containers copied all the way down, with
    the plain types records hold taken directly (asdict's general walk took 60 us a memory)."""
    kind = type(value)
    if kind in _SHARED:
        return value
    if kind is list:
        return [_copied(v) for v in value]
    if kind is dict:
        return {_copied(k): _copied(v) for k, v in value.items()}
    return asdict(_Box(value))["value"]  # anything else (a tuple, a dataclass) as asdict does


@dataclass
class _Box:
    value: Any


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(slots=True)
class Record:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The record's fields (copied, as ``dataclasses.asdict`` copies them) and its kind."""
        out = {name: _copied(getattr(self, name)) for name in _field_names(type(self))}
        out["kind"] = self.kind
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class Event(Record):
    """L0: one raw event exactly as sent, plus the node's id and the committing log index."""

    kind: ClassVar[str] = "event"
    event_id: str
    tenant: str
    user_id: str
    stream_id: str
    content: str
    timestamp: float
    content_type: str = "text"
    metadata: dict[str, Any] = field(default_factory=dict)
    log_index: int = 0


EVENT_FIELDS = tuple(f.name for f in fields(Event))
# What makes a resent event id the same event (anything else under that id is a clash).
SAME_EVENT = ("user_id", "stream_id", "content", "content_type", "metadata")


def event_record(event: Event) -> dict[str, Any]:
    """An event as its log command carries it. Field by field, not ``to_dict`` (a deep copy):
    a fifth of the cost of a batch before the state machine. Same dict, same bytes."""
    return {**{name: getattr(event, name) for name in EVENT_FIELDS}, "kind": Event.kind}


@dataclass(slots=True)
class Memory(Record):
    """L1: a consolidated memory distilled from one or more events."""

    kind: ClassVar[str] = "l1"
    id: str
    tenant: str
    user_id: str
    stream_id: str
    content: str
    source_event_ids: list[str]
    importance: float = 0.5
    keywords: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    valid_from: float | None = None
    valid_to: float | None = None
    created_at: float = 0.0
    superseded_by: str | None = None
    pinned: bool = False
    derivation: str = ""
    context: str = ""      # neighbouring turns: indexed for matching, not returned as content
    time_label: str = ""   # the resolved date of a relative time expression, if any
    subject: str = ""      # structured fact (LLM path): who/what, which attribute, its value
    attribute: str = ""
    value: str = ""
    # the entity extractor's reading of the statement (memory/readings.py): "kind:name" items,
    # and the extractor and checksum of the text it was read from
    mentions: list[str] = field(default_factory=list)
    mentions_by: str = ""
    log_index: int = 0


@dataclass(slots=True)
class Insight(Record):
    """L2: what many memories say together; the id is stable so a rerun updates it in place."""

    kind: ClassVar[str] = "l2"
    id: str
    tenant: str
    user_id: str
    content: str
    member_ids: list[str]
    source_event_ids: list[str]
    topic: str = ""
    importance: float = 0.5
    created_at: float = 0.0
    derivation: str = ""
    context: str = ""  # the members' own turns in full: searched, not returned
    log_index: int = 0


@dataclass(slots=True)
class Entity(Record):
    """Graph node: a person, place, organisation or thing mentioned in memories."""

    kind: ClassVar[str] = "entity"
    id: str
    tenant: str
    user_id: str
    name: str
    entity_type: str = "thing"
    aliases: list[str] = field(default_factory=list)
    memory_ids: list[str] = field(default_factory=list)
    log_index: int = 0


@dataclass(slots=True)
class Relation(Record):
    """Graph edge: typed, weighted, time-stamped, with the events it rests on."""

    kind: ClassVar[str] = "relation"
    id: str
    tenant: str
    user_id: str
    source: str
    target: str
    relation: str
    weight: float = 1.0
    timestamp: float = 0.0
    source_event_ids: list[str] = field(default_factory=list)
    log_index: int = 0


@dataclass(slots=True)
class Vector(Record):
    """An embedding of one record's text, committed through the log like any other state."""

    kind: ClassVar[str] = "vector"
    tenant: str
    record_id: str
    layer: str
    model: str
    values: bytes  # float32 little-endian
    log_index: int = 0


@dataclass(slots=True)
class Tombstone(Record):
    """Forgetting: the target disappears from RocksDB and every index derived from it."""

    kind: ClassVar[str] = "tombstone"
    tenant: str
    target_kind: str
    target_id: str
    reason: str = ""
    log_index: int = 0


@dataclass(slots=True)
class Access(Record):
    """Retrievals of one record since the previous flush (a delta). Stored as the running
    total at ``r/access/{tenant}/{record_id}`` with the newest ``last_access``."""

    kind: ClassVar[str] = "access"
    tenant: str
    user_id: str
    record_id: str
    target_kind: str
    count: int
    last_access: float
    log_index: int = 0


@dataclass(slots=True)
class ApiKey(Record):
    """An API key made at run time: only the SHA-256 of its secret is stored. Kept under
    ``SYSTEM_TENANT`` so every key is one prefix scan; ``key_tenant`` is the tenant it reaches.
    Revoking rewrites the record with ``revoked`` set, so every replica refuses it once applied."""

    kind: ClassVar[str] = "apikey"
    id: str
    key_tenant: str
    secret_sha256: str
    tenant: str = SYSTEM_TENANT
    read_only: bool = False
    name: str = ""
    created_at: float = 0.0
    revoked: bool = False
    revoked_at: float = 0.0
    log_index: int = 0


# Tombstones with these reasons (an explicit forget, decay) are final: the state machine never
# writes the same L1/L2 id (or its vector) again, though a pipeline may re-derive it.
FINAL_REASONS = frozenset({"forgotten", "decayed"})

RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls for cls in (Event, Memory, Insight, Entity, Relation, Vector, Tombstone, Access,
                              ApiKey)
}

# The layers the API speaks of, and the record kinds that hold them. Defined here once.
LAYER_OF_KIND = {"event": "L0", "l1": "L1", "l2": "L2"}
KIND_OF_LAYER = {layer: kind for kind, layer in LAYER_OF_KIND.items()}
MEMORY_LAYERS = ("L1", "L2")  # what a memory route, decay or access counting deals with
DERIVED_KINDS = ("l1", "l2", "entity", "relation")  # made by the pipeline, listed per user


def record_id(record: dict[str, Any]) -> str:
    """The id of an event, memory, insight, entity or relation record."""
    return record["event_id"] if record["kind"] == "event" else record["id"]


def record_from_dict(data: dict[str, Any]) -> Record:
    try:
        cls = RECORD_TYPES[data["kind"]]
    except KeyError as exc:
        raise ValueError(f"unknown record kind: {data.get('kind')!r}") from exc
    return cls.from_dict(data)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """A vector's wire and storage form: float32 little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")
