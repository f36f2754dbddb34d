"""Typed answers of the Memorose API.

Each model has the API's fields as attributes (``result.provenance[0].metadata``) and still
reads like the JSON it came from (``result["id"]``, ``result.get("time")``,
``result.to_dict()``), so code written against plain dicts keeps working. Fields the API adds
later stay reachable by key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

M = TypeVar("M", bound="Model")


@dataclass(frozen=True)
class Model:
    raw: dict[str, Any] = field(repr=False, compare=False)
    nested: ClassVar[dict[str, type[Model]]] = {}  # field -> model of each item of a list

    @classmethod
    def of(cls: type[M], raw: dict[str, Any]) -> M:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "raw" or f.name not in raw:
                continue
            item = cls.nested.get(f.name)
            value = raw[f.name]
            values[f.name] = [item.of(v) for v in value] if item and value is not None else value
        return cls(raw=raw, **values)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as the API sent it."""
        return dict(self.raw)


@dataclass(frozen=True)
class Provenance(Model):
    """One raw event a result came from, with its metadata as sent."""

    event_id: str = ""
    stream_id: str = ""
    timestamp: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result(Model):
    """One retrieve hit: an event (L0), memory (L1) or insight (L2), with provenance."""

    nested: ClassVar[dict[str, type[Model]]] = {"provenance": Provenance}
    id: str = ""
    layer: str = ""
    content: str = ""
    score: float = 0.0
    provenance: list[Provenance] = field(default_factory=list)
    user_id: str | None = None
    stream_id: str | None = None
    timestamp: float | None = None
    importance: float | None = None
    time: str | None = None
    superseded_by: str | None = None
    member_ids: list[str] | None = None


@dataclass(frozen=True)
class Event(Model):
    """A raw event as stored."""

    event_id: str = ""
    user_id: str = ""
    stream_id: str = ""
    content: str = ""
    content_type: str = "text"
    timestamp: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    log_index: int = 0


@dataclass(frozen=True)
class Memory(Model):
    """An L1 memory or an L2 insight, with provenance."""

    nested: ClassVar[dict[str, type[Model]]] = {"provenance": Provenance}
    id: str = ""
    layer: str = ""
    content: str = ""
    user_id: str = ""
    stream_id: str | None = None
    provenance: list[Provenance] = field(default_factory=list)
    importance: float | None = None
    keywords: list[str] | None = None
    entities: list[str] | None = None
    created_at: float | None = None
    superseded_by: str | None = None
    topic: str | None = None
    member_ids: list[str] | None = None
    log_index: int | None = None


@dataclass(frozen=True)
class Entity(Model):
    """A person, place, organisation or thing in a user's graph."""

    id: str = ""
    name: str = ""
    entity_type: str = "thing"
    aliases: list[str] = field(default_factory=list)
    memory_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Relation(Model):
    """A typed, weighted edge (``mentioned_in``, ``co_occurs``) with its source events."""

    id: str = ""
    source: str = ""
    target: str = ""
    relation: str = ""
    weight: float = 1.0
    timestamp: float = 0.0
    source_event_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Graph(Model):
    nested: ClassVar[dict[str, type[Model]]] = {"entities": Entity, "relations": Relation}
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


@dataclass(frozen=True)
class ContextItem(Model):
    """A memory packed into a context, with its provenance."""

    nested: ClassVar[dict[str, type[Model]]] = {"provenance": Provenance}
    id: str = ""
    layer: str = ""
    score: float = 0.0
    provenance: list[Provenance] = field(default_factory=list)


@dataclass(frozen=True)
class Context(Model):
    """Prompt-ready text within a token budget, and the memories it holds."""

    nested: ClassVar[dict[str, type[Model]]] = {"memories": ContextItem}
    context: str = ""
    tokens: int = 0
    memories: list[ContextItem] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate(Model):
    id: str = ""
    layer: str = ""
    content: str = ""
    score: float = 0.0


@dataclass(frozen=True)
class ForgetPreview(Model):
    """What a forget by query would remove, and the signed token that confirms it."""

    nested: ClassVar[dict[str, type[Model]]] = {"candidates": Candidate}
    candidates: list[Candidate] = field(default_factory=list)
    token: str = ""
    expires_at: int = 0

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.candidates]


@dataclass(frozen=True)
class Forgotten(Model):
    """What a forget removed: asked for, cascaded from it, and rewritten without it."""

    forgotten: list[dict[str, str]] = field(default_factory=list)
    cascaded: list[dict[str, str]] = field(default_factory=list)
    updated: list[dict[str, str]] = field(default_factory=list)
    log_index: int | None = None


@dataclass(frozen=True)
class Status(Model):
    """A node's view of the cluster (the admin key's ``/api/v1/cluster/status``)."""

    node_id: str = ""
    role: str = ""
    leader: str | None = None
    leader_url: str | None = None
    term: int = 0
    commit_index: int = 0
    applied_index: int = 0
    indexed_index: int = 0
    has_quorum: bool = False
    peers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApiKey(Model):
    """A tenant key made at run time; ``secret`` only in the answer that made it."""

    key_id: str = ""
    tenant: str = ""
    read_only: bool = False
    name: str = ""
    created_at: float = 0.0
    revoked: bool = False
    revoked_at: float | None = None
    secret: str | None = None


@dataclass(frozen=True)
class MemoryPage(Model):
    """One page of a user's memories; pass ``next_cursor`` back for the next (None: the end)."""

    nested: ClassVar[dict[str, type[Model]]] = {"memories": Memory}
    memories: list[Memory] = field(default_factory=list)
    next_cursor: str | None = None
