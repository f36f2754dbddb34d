"""What we ask an LLM, and the shapes its answers must take.

Each task has a system instruction, a prompt builder, a response schema (the OpenAPI subset Gemini
accepts as ``response_schema``) and a parser that validates the reply. Parsers raise ``ValueError``
on anything off-shape; the provider translates that into its own error with the model's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Action = Literal["ADD", "UPDATE", "NOOP"]
ACTIONS: tuple[Action, ...] = ("ADD", "UPDATE", "NOOP")
# A year, a month or a day, optionally with a time of day: what "when" can honestly be known.
ISO_TIME = re.compile(r"\d{4}(-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                      r"(Z|[+-]\d{2}:?\d{2})?)?)?)?")


@dataclass(frozen=True)
class Fact:
    """One atomic fact distilled from L0 events, with the events it came from."""

    subject: str
    attribute: str
    value: str
    time: str | None            # ISO date (or year / month / datetime) the fact holds from
    confidence: float           # 0..1
    source_event_ids: list[str]
    text: str                   # a standalone sentence stating the fact


@dataclass(frozen=True)
class UpdateDecision:
    """What to do with a new fact given similar memories.

    ADD: keep it as a new memory. UPDATE: keep it and mark ``memory_id`` superseded.
    NOOP: drop it; ``memory_id``, when set, is the memory that already says it.
    """

    action: Action
    memory_id: str | None
    reason: str


EXTRACT_SYSTEM = """\
You distil long-term memories from raw events (chat turns, notes, tool results) of one user.
Return atomic facts worth remembering: preferences, plans, relationships, biography, events
with dates, decisions. Skip greetings, filler and facts about the conversation itself.
Each fact names its subject (a person by name, or "user" for the user), an attribute, a value,
the date it holds from when known (ISO 8601 YYYY-MM-DD, or YYYY-MM / YYYY; resolve relative
dates like "yesterday" against the event time; null when unknown), a confidence in [0, 1],
the event_ids it comes from (only ids given in the input) and a standalone sentence stating it
with no pronouns left unresolved. Reply with JSON only: {"facts": [...]}; {"facts": []} if none.
"""

DECIDE_SYSTEM = """\
You keep a memory store consistent. Given a new fact and similar existing memories, decide:
ADD if the fact is new information; UPDATE with memory_id if it replaces or corrects an
existing memory (one decision per superseded memory); NOOP if an existing memory already says
it (memory_id = that memory). Use only memory ids from the input. Reply with JSON only:
{"decisions": [{"action": "ADD"|"UPDATE"|"NOOP", "memory_id": id or null, "reason": "..."}]}.
"""

SUMMARISE_SYSTEM = """\
You write insights for a long-term memory store. Given related memories of one user, state in
two to four sentences what they say together: a trait, a recurring topic, a pattern or a change
over time. Do not list the memories; do not invent facts. Reply with JSON only:
{"summary": "..."}.
"""

FACT_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "subject": {"type": "STRING"},
        "attribute": {"type": "STRING"},
        "value": {"type": "STRING"},
        "time": {"type": "STRING", "nullable": True},
        "confidence": {"type": "NUMBER"},
        "source_event_ids": {"type": "ARRAY", "items": {"type": "STRING"}},
        "text": {"type": "STRING"},
    },
    "required": ["subject", "attribute", "value", "time", "confidence", "source_event_ids",
                 "text"],
}
EXTRACT_SCHEMA: dict[str, Any] = {
    "type": "OBJECT", "properties": {"facts": {"type": "ARRAY", "items": FACT_SCHEMA}},
    "required": ["facts"],
}
DECIDE_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {"decisions": {"type": "ARRAY", "items": {
        "type": "OBJECT",
        "properties": {"action": {"type": "STRING", "enum": list(ACTIONS)},
                       "memory_id": {"type": "STRING", "nullable": True},
                       "reason": {"type": "STRING"}},
        "required": ["action", "memory_id", "reason"]}}},
    "required": ["decisions"],
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "OBJECT", "properties": {"summary": {"type": "STRING"}}, "required": ["summary"],
}


def _iso(timestamp: float | int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(float(timestamp), UTC).isoformat(timespec="seconds")


def extract_batches(events: list[dict], size: int) -> Iterator[list[dict]]:
    """Events grouped by user (a request never mixes users), in order, at most ``size`` each."""
    by_user: dict[object, list[dict]] = {}
    for event in events:
        by_user.setdefault(event.get("user_id"), []).append(event)
    for run in by_user.values():
        for start in range(0, len(run), size):
            yield run[start:start + size]


def extract_prompt(events: list[dict]) -> str:
    """The extraction request for a batch of L0 events, as JSON the model reads."""
    rows = [{"event_id": e["event_id"], "time": _iso(e.get("timestamp")),
             "user_id": e.get("user_id"), "stream_id": e.get("stream_id"),
             "metadata": e.get("metadata") or {}, "content": e["content"]} for e in events]
    return "Events:\n" + json.dumps(rows, ensure_ascii=False, indent=1)


def decide_prompt(fact: Fact, existing: list[dict]) -> str:
    """The update-decision request: the new fact and the similar memories it may touch."""
    new = {"text": fact.text, "subject": fact.subject, "attribute": fact.attribute,
           "value": fact.value, "time": fact.time}
    old = [{"memory_id": m["id"], "content": m["content"]} for m in existing]
    return ("New fact:\n" + json.dumps(new, ensure_ascii=False)
            + "\nExisting memories:\n" + json.dumps(old, ensure_ascii=False, indent=1))


def summarise_prompt(memories: list[dict]) -> str:
    """The insight request for a group of memories."""
    rows = [{"id": m.get("id"), "content": m["content"]} for m in memories]
    return "Memories:\n" + json.dumps(rows, ensure_ascii=False, indent=1)


def _object(text: str, key: str) -> Any:
    data = json.loads(text)
    if not isinstance(data, dict) or key not in data:
        raise ValueError(f"expected a JSON object with {key!r}")
    return data[key]


def _string(item: dict, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _fact(item: Any, known_ids: set[str]) -> Fact:
    if not isinstance(item, dict):
        raise ValueError(f"a fact must be an object, got {type(item).__name__}")
    time = item.get("time")
    if time is not None and (not isinstance(time, str) or not ISO_TIME.fullmatch(time.strip())):
        raise ValueError(f"'time' must be an ISO date or null, got {time!r}")
    confidence = item.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
            or not 0.0 <= confidence <= 1.0:
        raise ValueError(f"'confidence' must be a number in [0, 1], got {confidence!r}")
    ids = item.get("source_event_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"'source_event_ids' must be a non-empty list of ids, got {ids!r}")
    unknown = sorted(set(ids) - known_ids)
    if unknown:
        raise ValueError(f"'source_event_ids' names events not in the input: {unknown}")
    return Fact(subject=_string(item, "subject"), attribute=_string(item, "attribute"),
                value=_string(item, "value"), time=time.strip() if time else None,
                confidence=float(confidence), source_event_ids=list(dict.fromkeys(ids)),
                text=_string(item, "text"))


def parse_facts(text: str, event_ids: list[str]) -> list[Fact]:
    """Facts from an extraction reply; every fact must cite events from ``event_ids``."""
    items = _object(text, "facts")
    if not isinstance(items, list):
        raise ValueError("'facts' must be a list")
    known = set(event_ids)
    return [_fact(item, known) for item in items]


def parse_decisions(text: str, memory_ids: list[str]) -> list[UpdateDecision]:
    """Decisions from an update reply: non-empty, known ids, and NOOP never mixed with changes."""
    items = _object(text, "decisions")
    if not isinstance(items, list) or not items:
        raise ValueError("'decisions' must be a non-empty list")
    known = set(memory_ids)
    decisions = []
    for item in items:
        if not isinstance(item, dict) or item.get("action") not in ACTIONS:
            raise ValueError(f"a decision needs an action in {ACTIONS}, got {item!r}")
        memory_id = item.get("memory_id")
        if memory_id is not None and (not isinstance(memory_id, str) or memory_id not in known):
            raise ValueError(f"'memory_id' {memory_id!r} is not one of the existing memories")
        if item["action"] == "UPDATE" and memory_id is None:
            raise ValueError("an UPDATE must name the memory_id it supersedes")
        if item["action"] == "ADD" and memory_id is not None:
            raise ValueError("an ADD must not name a memory_id")
        reason = item.get("reason")
        decisions.append(UpdateDecision(item["action"], memory_id,
                                        reason if isinstance(reason, str) else ""))
    actions = {d.action for d in decisions}
    if "NOOP" in actions and len(actions) > 1:
        raise ValueError(f"NOOP mixed with other actions: {sorted(actions)}")
    return decisions


def parse_summary(text: str) -> str:
    """The summary string from an insight reply."""
    summary = _object(text, "summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError("'summary' must be a non-empty string")
    return summary.strip()
