"""L2 insights: recurring topics across a user's memories, with stable ids.

An insight's id depends only on (tenant, user, topic), so a rerun over more memories updates the
same insight in place instead of adding a second one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from memorose_dagster.records import Insight, stable_id

MIN_MEMBERS = 3
MAX_QUOTES = 3


def derive_insights(memories: list[dict[str, Any]]) -> list[Insight]:
    """One insight per entity or keyword that at least ``MIN_MEMBERS`` live memories share."""
    live = [m for m in memories if not m.get("superseded_by")]
    by_topic: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for memory in live:
        for topic in {*memory.get("entities", []), *memory.get("keywords", [])[:3]}:
            by_topic[(memory["tenant"], memory["user_id"], topic)].append(memory)
    insights = []
    for (tenant, user, topic), members in sorted(by_topic.items()):
        if len(members) < MIN_MEMBERS:
            continue
        members.sort(key=lambda m: (-m.get("importance", 0.0), m["id"]))
        quotes = "; ".join(m["content"][:160] for m in members[:MAX_QUOTES])
        insights.append(Insight(
            id=stable_id("l2", tenant, user, "topic", topic.lower()), tenant=tenant,
            user_id=user, topic=topic,
            content=f"Recurring topic '{topic}' ({len(members)} memories): {quotes}",
            member_ids=sorted(m["id"] for m in members),
            source_event_ids=sorted({e for m in members for e in m["source_event_ids"]}),
            importance=round(min(1.0, 0.3 + 0.1 * len(members)), 4),
            created_at=max(m.get("created_at", 0.0) for m in members), derivation="local-v1"))
    return insights
