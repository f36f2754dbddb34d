"""Forgetting as pure logic: temporal decay with reinforcement, what decay may prune, and the
cascade of a forget through everything derived from the forgotten items.

Decay. A memory's strength is its importance, boosted by how often it was retrieved, halving
every ``half_life_days`` since it was last reinforced (created, or last retrieved). Pinned
memories and memories at or above the protection threshold are never pruned. Age is measured on
the user's clock (``user_clock``): up to the user's latest activity, not the wall clock, so a user
who is away for a year comes back to the memory they left, and a replayed history is not aged by
the time between its events and the replay.

Superseded memories are the history of the memory that replaced them: decay never prunes a piece
of history while the memory at the head of its chain lives, only together with it (every memory
of the chain below the floor). A forget, on the other hand, does not follow supersession: history
stays history, pointing at a successor that is gone.

Cascade. Forgetting removes what rests only on the forgotten items and rewrites what rests on
them in part: L1s whose source events are all forgotten go, others lose the forgotten event ids
and any quote of them (a reply in the text, neighbouring turns in the ``context``);
L2 insights are derived again from the memories left (gone when no longer supported); entities
lose the forgotten memories (gone when none is left); relations the local graph derives are
recomputed from the remaining memories, other relations go when an endpoint or every source
event is gone. Only records that reference a forgotten item are touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memorose_dagster.memory.graph import build_graph
from memorose_dagster.memory.insights import derive_insights
from memorose_dagster.records import Relation, Tombstone, record_id

DAY = 86_400.0
HALF_LIFE_DAYS = 90.0
FLOOR = 0.05
PROTECT_IMPORTANCE = 0.8
ACCESS_BOOST = 0.5  # strength x1.5 after one retrieval, x2 after three, x2.5 after seven
LOCAL_RELATIONS = frozenset({"mentioned_in", "co_occurs"})  # what memory/graph.py derives

# Tombstone reasons. The target of an explicit forget or of decay is final (records.FINAL_REASONS):
# the state machine never writes its id again, though a pipeline may re-derive it (an L1's id is
# a hash of its event, which may still be there). Records removed only because what they rested
# on went carry "cascade: <reason>" and may come back on their own.
REASON_FORGOTTEN = "forgotten"
REASON_DECAYED = "decayed"
TEXT_PROBE = 60  # leading characters of a forgotten event looked for in other memories' text

Record = dict[str, Any]


def strength(memory: Mapping[str, Any], now: float, half_life_days: float = HALF_LIFE_DAYS,
             access_count: int = 0, last_access: float | None = None) -> float:
    """``importance * 0.5 ** (age / half_life)``, in 0..1.

    Reinforcement: ``access_count`` retrievals multiply the importance by
    ``1 + ACCESS_BOOST * log2(1 + access_count)`` (capped at 1), and the age counts from the last
    reinforcement (``last_access`` if later than the memory's creation). A memory without a known
    creation time does not decay.
    """
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    importance = float(memory.get("importance", 0.5))
    boosted = min(1.0, importance * (1.0 + ACCESS_BOOST * math.log2(1 + max(access_count, 0))))
    born = memory.get("created_at") or memory.get("valid_from")
    if not born:
        return boosted
    reinforced = max(float(born), float(last_access or 0.0))
    age_days = max(0.0, now - reinforced) / DAY
    return boosted * 0.5 ** (age_days / half_life_days)


def user_clock(memories: Iterable[Mapping[str, Any]],
               access: Mapping[str, Mapping[str, Any]], now: float) -> float:
    """The user's "now" for decay: the latest memory creation or retrieval, never past ``now``.
    A user with neither (nothing known) is at ``now``."""
    latest = [float(m.get("created_at") or 0.0) for m in memories]
    latest += [float(a.get("last_access") or 0.0) for a in access.values()]
    return min(now, max(latest, default=now) or now)


def is_protected(memory: Mapping[str, Any], protect_importance: float = PROTECT_IMPORTANCE,
                 ) -> bool:
    return bool(memory.get("pinned")) or memory.get("importance", 0.0) >= protect_importance


def select_prunable(memories: Iterable[Record], now: float, floor: float = FLOOR,
                    half_life_days: float = HALF_LIFE_DAYS,
                    protect_importance: float = PROTECT_IMPORTANCE,
                    access: Mapping[str, Mapping[str, Any]] | None = None) -> list[Record]:
    """The memories decay prunes: strength below ``floor``, never pinned or protected ones, and
    superseded ones only with their whole chain up to the live head. ``access`` maps a memory id
    to its ``{count, last_access}``."""
    access = access or {}
    memories = list(memories)
    by_id = {m["id"]: m for m in memories}

    def weak(memory: Record) -> bool:
        hits = access.get(memory["id"], {})
        return not is_protected(memory, protect_importance) and strength(
            memory, now, half_life_days, int(hits.get("count", 0)),
            hits.get("last_access")) < floor

    weak_ids = {m["id"] for m in memories if weak(m)}
    return [m for m in memories if _chain_is_weak(m, by_id, weak_ids)]


def _chain_is_weak(memory: Record, by_id: Mapping[str, Record], weak_ids: set[str]) -> bool:
    """Whether ``memory`` and every successor up to the live head of its chain are weak."""
    seen: set[str] = set()
    current: Record | None = memory
    while current is not None:
        if current["id"] in seen or current["id"] not in weak_ids:  # a cycle is kept, too
            return False
        seen.add(current["id"])
        current = by_id.get(current.get("superseded_by") or "")
    return True


@dataclass
class Cascade:
    """What one forget commits: tombstones (targets first) and the dependents kept, rewritten."""

    tombstones: list[Record] = field(default_factory=list)
    updates: list[Record] = field(default_factory=list)
    _gone: dict[str, set[str]] = field(default_factory=dict, repr=False)
    new_text: set[str] = field(default_factory=set, repr=False)

    def records(self) -> list[Record]:
        return self.tombstones + self.updates

    def to_embed(self) -> list[Record]:
        """Rewritten L1s and L2s whose text changed: their old vectors still carry what was
        forgotten, so they need new ones."""
        return [r for r in self.updates if r["kind"] in ("l1", "l2")
                and r["id"] in self.new_text]

    def gone(self, kind: str) -> set[str]:
        return set(self._gone.get(kind, ()))

    def add(self, record: Record, reason: str) -> None:
        kind, rid = record["kind"], record_id(record)
        gone = self._gone.setdefault(kind, set())
        if rid not in gone:
            gone.add(rid)
            self.tombstones.append(Tombstone(tenant=record["tenant"], target_kind=kind,
                                             target_id=rid, reason=reason).to_dict())


def cascade(targets: Iterable[Record], records: Mapping[str, list[Record]],
            reason: str = REASON_FORGOTTEN) -> Cascade:
    """Tombstones for ``targets`` (events, L1s, L2s) and for what rests only on them, plus the
    rewritten records that rest on them in part. ``records`` holds the user's derived records by
    kind: ``l1``, ``l2``, ``entity``, ``relation`` (missing kinds count as none)."""
    targets = list(targets)
    plan = Cascade()
    for target in targets:
        plan.add(target, reason)
    dependent = f"cascade: {reason}"
    texts = {t["event_id"]: t["content"][:TEXT_PROBE] for t in targets if t["kind"] == "event"}
    live, changed = _cascade_memories(plan, records.get("l1", []), texts, dependent)
    _cascade_insights(plan, records.get("l2", []), live, changed, dependent)
    _cascade_graph(plan, records.get("entity", []), records.get("relation", []), live, changed,
                   dependent)
    return plan


def _cascade_memories(plan: Cascade, memories: list[Record], texts: dict[str, str],
                      reason: str) -> tuple[list[Record], set[str]]:
    """The L1s still live after the forget, and the ids of those rewritten. ``texts`` maps each
    forgotten event to the start of its text."""
    gone_events, gone_memories = plan.gone("event"), plan.gone("l1")
    live, changed = [], set()
    for memory in memories:
        if memory["id"] in gone_memories:
            continue
        rewritten = _without_events(memory, gone_events, texts)
        if rewritten is None:
            plan.add(memory, reason)
            continue
        if _update_if_changed(plan, memory, rewritten):
            changed.add(memory["id"])
        live.append(rewritten)
    return live, changed


def _without_events(memory: Record, gone_events: set[str], texts: dict[str, str],
                    ) -> Record | None:
    """``memory`` without the forgotten events: their ids leave its sources, a quote of one
    (a reply that travelled with its turn) is cut from its text, and neighbouring turns kept as
    ``context`` go when they quote one. None when nothing of its own is left."""
    sources = memory.get("source_event_ids", [])
    kept = [e for e in sources if e not in gone_events]
    if sources and not kept:
        return None
    content = memory["content"]
    for event_id in (e for e in sources if e in texts):
        at = content.find(texts[event_id]) if texts[event_id] else -1
        if at == 0:  # its own text is the forgotten event's (a merged duplicate)
            return None
        if at > 0:
            content = content[:at].rstrip(" /")  # " / ": how a reply is joined to its turn
    rewritten = {**memory, "source_event_ids": kept, "content": content}
    context = memory.get("context") or ""
    if context and any(t and t in context for t in texts.values()):
        rewritten["context"] = ""
    return rewritten


def _cascade_insights(plan: Cascade, insights: list[Record], live: list[Record],
                      changed: set[str], reason: str) -> None:
    """Insights touched by the forget are derived again from the memories left, as the
    pipeline would, so their content no longer quotes what was forgotten; an insight the
    memories left no longer support (too few members) goes."""
    gone_events, gone = plan.gone("event"), plan.gone("l1") | plan.gone("l2")
    derived: dict[str, Any] | None = None
    for insight in insights:
        touched = set(insight.get("member_ids", [])) & (gone | changed) or \
            gone_events.intersection(insight.get("source_event_ids", []))
        if insight["id"] in gone or not touched:
            continue
        if derived is None:
            derived = {i.id: i for i in derive_insights(live)}
        fresh = derived.get(insight["id"])
        if fresh is None:
            plan.add(insight, reason)
        else:
            _update_if_changed(plan, {**insight, "log_index": 0}, fresh.to_dict())


def _cascade_graph(plan: Cascade, entities: list[Record], relations: list[Record],
                   live: list[Record], changed: set[str], reason: str) -> None:
    gone_memories = plan.gone("l1") | plan.gone("l2")
    touched_memories = gone_memories | changed
    touched = set()
    for entity in entities:
        memory_ids = entity.get("memory_ids", [])
        if not touched_memories.intersection(memory_ids):
            continue
        touched.add(entity["id"])
        kept = [m for m in memory_ids if m not in gone_memories]
        if kept:
            _update_if_changed(plan, entity, {**entity, "memory_ids": kept})
        else:
            plan.add(entity, reason)
    _, rebuilt = build_graph(live)
    fresh = {r.id: r for r in rebuilt}
    gone_ends = gone_memories | plan.gone("entity")
    gone_events = plan.gone("event")
    for relation in relations:
        ends = {relation["source"], relation["target"]}
        sources = relation.get("source_event_ids", [])
        if not ends & (touched_memories | touched) and not gone_events.intersection(sources):
            continue
        _cascade_relation(plan, relation, fresh.get(relation["id"]),
                          bool(ends & gone_ends), gone_events, reason)


def _cascade_relation(plan: Cascade, relation: Record, fresh: Relation | None, end_gone: bool,
                      gone_events: set[str], reason: str) -> None:
    """Recomputed when the local graph still derives it; otherwise gone when it is a local kind,
    an endpoint is gone or every source event is; else it only loses the forgotten events."""
    sources = relation.get("source_event_ids", [])
    kept = [e for e in sources if e not in gone_events]
    if fresh is not None and not end_gone:
        _update_if_changed(plan, relation, {
            **relation, "weight": fresh.weight, "timestamp": fresh.timestamp,
            "source_event_ids": fresh.source_event_ids})
    elif relation["relation"] in LOCAL_RELATIONS or end_gone or (sources and not kept):
        plan.add(relation, reason)
    else:
        _update_if_changed(plan, relation, {**relation, "source_event_ids": kept})


def _update_if_changed(plan: Cascade, old: Record, new: Record) -> bool:
    if new == old:
        return False
    plan.updates.append(new)
    if new.get("content") != old.get("content"):
        plan.new_text.add(new["id"])
    return True
