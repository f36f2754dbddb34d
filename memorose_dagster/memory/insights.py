"""L2 insights: recurring topics across a user's memories, with stable ids.

An insight's id depends only on (tenant, user, topic), so a rerun over more memories updates the
same insight in place instead of adding a second one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from memorose_dagster.memory.consolidate import speaker_of
from memorose_dagster.memory.text import STOPWORDS
from memorose_dagster.records import Insight, stable_id

MIN_MEMBERS = 3
MAX_MEMBERS = 10
MAX_SHARE = 0.05  # in more than 5% of a large user's memories, a topic is a theme of everything
MAX_QUOTES = 3


def _topics(memory: dict[str, Any], speakers: set[str]) -> set[str]:
    found = {t.lower() for t in (*memory.get("entities", []), *memory.get("keywords", [])[:3])}
    return {t for t in found if t not in speakers and t not in STOPWORDS}


def derive_insights(memories: list[dict[str, Any]]) -> list[Insight]:
    """One insight per specific topic (an entity or keyword) that at least ``MIN_MEMBERS`` live
    memories share but no more than ``MAX_SHARE`` of them: speakers and words that occur
    everywhere say nothing. An insight names its ``MAX_MEMBERS`` most important members."""
    live = [m for m in memories if not m.get("superseded_by")]
    speakers = {speaker_of(m["content"], "").lower() for m in live} - {""}
    by_topic: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for memory in live:
        for topic in _topics(memory, speakers):
            by_topic[(memory["tenant"], memory["user_id"], topic)].append(memory)
    ceiling = max(4 * MIN_MEMBERS, int(MAX_SHARE * len(live)))
    insights = []
    for (tenant, user, topic), members in sorted(by_topic.items()):
        if not MIN_MEMBERS <= len(members) <= ceiling:
            continue
        members.sort(key=lambda m: (-m.get("importance", 0.0), m["id"]))
        members = members[:MAX_MEMBERS]
        quotes = "; ".join(m["content"][:120] for m in members[:MAX_QUOTES])
        insights.append(Insight(
            id=stable_id("l2", tenant, user, "topic", topic.lower()), tenant=tenant,
            user_id=user, topic=topic,
            content=f"Recurring topic '{topic}': {quotes}",
            member_ids=sorted(m["id"] for m in members),
            source_event_ids=sorted({e for m in members for e in m["source_event_ids"]}),
            importance=round(min(1.0, 0.3 + 0.1 * len(members)), 4),
            created_at=max(m.get("created_at", 0.0) for m in members), derivation="local-v1"))
    return insights
