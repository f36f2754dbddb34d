"""L1 memories from LLM-extracted facts (the Gemini path of the consolidator).

A fact names its subject, attribute and value; a newer fact for the same subject and attribute
with another value supersedes the older memory, after the model's own update decision agrees.
Ids derive from (sources, subject, attribute), so a rerun over the same events rewrites in place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from memorose_dagster.ids import stable_id
from memorose_dagster.memory import text
from memorose_dagster.records import Memory

Decide = Callable[[Any, list[dict[str, Any]]], list[Any]]


def _when(value: str | None) -> float | None:
    if not value:
        return None
    for fmt, size in (("%Y-%m-%d", 10), ("%Y-%m", 7), ("%Y", 4)):
        try:
            return datetime.strptime(value[:size], fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def memory_from_fact(fact: Any, events: dict[str, dict[str, Any]], model: str) -> Memory:
    first = events[fact.source_event_ids[0]]
    sources = sorted(fact.source_event_ids)
    valid_from = _when(fact.time) or first["timestamp"]
    return Memory(
        id=stable_id("l1", ",".join(sources), fact.subject.lower(),
                     fact.attribute.lower()),
        tenant=first["tenant"], user_id=first["user_id"], stream_id=first["stream_id"],
        content=fact.text + (f" [{fact.time}]" if fact.time else ""), source_event_ids=sources,
        importance=round(0.4 + 0.5 * fact.confidence, 4), keywords=text.keywords(fact.text),
        entities=text.entities(fact.text), valid_from=valid_from,
        created_at=max(events[s]["timestamp"] for s in sources), derivation=f"gemini:{model}",
        time_label=fact.time or "", subject=fact.subject, attribute=fact.attribute,
        value=fact.value)


def consolidate_facts(facts: list[Any], events: list[dict[str, Any]],
                      existing: list[dict[str, Any]], decide: Decide, model: str) -> list[Memory]:
    """New memories for ``facts`` plus the existing ones they supersede."""
    by_id = {e["event_id"]: e for e in events}
    live = [m for m in existing if not m.get("superseded_by")]
    changed: dict[str, Memory] = {}
    for fact in facts:
        memory = memory_from_fact(fact, by_id, model)
        similar = [m for m in live if m.get("subject", "").lower() == fact.subject.lower()
                   and m.get("attribute", "").lower() == fact.attribute.lower()
                   and m["id"] != memory.id]
        decisions = decide(fact, [{"id": m["id"], "content": m["content"]} for m in similar])
        if any(d.action == "NOOP" for d in decisions):
            continue
        for decision in decisions:
            if decision.action == "UPDATE" and decision.memory_id:
                old = next(m for m in similar if m["id"] == decision.memory_id)
                changed[old["id"]] = Memory.from_dict({**old, "superseded_by": memory.id})
        changed[memory.id] = memory
        live.append(memory.to_dict())
    return sorted(changed.values(), key=lambda m: m.id)
