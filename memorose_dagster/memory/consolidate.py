"""The local, deterministic consolidator: new L0 events in, L1 memories out.

Pure: the same events give the same memories (and ids) on every run. Noise (greetings, "ok",
"lol": text with almost no information) is dropped; every memory names its source events.
"""

from __future__ import annotations

from typing import Any

from memorose_dagster.memory import text
from memorose_dagster.records import Memory, stable_id

DERIVATION = "local-v1"
NOISE_BITS = 1.5  # information() of "ok thanks" is 0, "see you" ~1, a real fact >= 3


def is_noise(content: str) -> bool:
    return text.information(content) < NOISE_BITS


def importance(content: str) -> float:
    """0..1 from information content, saturating around a long, varied sentence."""
    return round(min(1.0, text.information(content) / 25.0), 4)


def consolidate(events: list[dict[str, Any]]) -> list[Memory]:
    """One memory per informative event, keeping its keywords, entities and time."""
    memories = []
    for event in sorted(events, key=lambda e: (e["timestamp"], e["event_id"])):
        content = event["content"]
        if event.get("content_type", "text") != "text" or is_noise(content):
            continue
        memories.append(Memory(
            id=stable_id("l1", event["tenant"], event["event_id"], "0"),
            tenant=event["tenant"], user_id=event["user_id"], stream_id=event["stream_id"],
            content=content, source_event_ids=[event["event_id"]],
            importance=importance(content), keywords=text.keywords(content),
            entities=text.entities(content), valid_from=event["timestamp"],
            created_at=event["timestamp"], derivation=DERIVATION))
    return memories
