"""The knowledge graph from L1 memories: entities and typed, weighted edges with provenance."""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

from memorose_dagster.records import Entity, Relation, stable_id


def entity_id(tenant: str, user_id: str, name: str) -> str:
    return stable_id("ent", tenant, user_id, name.lower())


def build_graph(memories: list[dict[str, Any]]) -> tuple[list[Entity], list[Relation]]:
    """Entities named in ``memories``; ``mentioned_in`` edges entity -> memory, and
    ``co_occurs`` edges between entities named in the same memory (weight = shared memories)."""
    entities: dict[str, Entity] = {}
    relations: dict[str, Relation] = {}
    for memory in sorted(memories, key=lambda m: m["id"]):
        tenant, user = memory["tenant"], memory["user_id"]
        ids = []
        for name in memory.get("entities", []):
            eid = entity_id(tenant, user, name)
            entity = entities.setdefault(eid, Entity(id=eid, tenant=tenant, user_id=user,
                                                     name=name))
            entity.memory_ids = sorted({*entity.memory_ids, memory["id"]})
            ids.append(eid)
            rid = stable_id("rel", eid, "mentioned_in", memory["id"])
            relations[rid] = Relation(
                id=rid, tenant=tenant, user_id=user, source=eid, target=memory["id"],
                relation="mentioned_in", timestamp=memory.get("valid_from") or 0.0,
                source_event_ids=list(memory["source_event_ids"]))
        for a, b in combinations(sorted(set(ids)), 2):
            rid = stable_id("rel", a, "co_occurs", b)
            edge = relations.get(rid)
            if edge is None:
                relations[rid] = Relation(
                    id=rid, tenant=tenant, user_id=user, source=a, target=b,
                    relation="co_occurs", weight=1.0, timestamp=memory.get("valid_from") or 0.0,
                    source_event_ids=list(memory["source_event_ids"]))
            else:
                edge.weight += 1.0
                edge.source_event_ids = sorted({*edge.source_event_ids,
                                                *memory["source_event_ids"]})
                edge.timestamp = max(edge.timestamp, memory.get("valid_from") or 0.0)
    return list(entities.values()), list(relations.values())


def neighbourhood(entities: list[dict[str, Any]], relations: list[dict[str, Any]],
                  around: str | None, hops: int) -> tuple[list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    """The whole graph, or the part within ``hops`` edges of the entity named ``around``
    (matched by name or alias, case-insensitively). Unknown names give an empty graph."""
    if around is None:
        return entities, relations
    wanted = around.lower()
    frontier = {e["id"] for e in entities
                if e["name"].lower() == wanted or wanted in (a.lower() for a in e["aliases"])}
    seen = set(frontier)
    for _ in range(hops):
        step = {r["target"] for r in relations if r["source"] in frontier} \
            | {r["source"] for r in relations if r["target"] in frontier}
        frontier = step - seen
        seen |= step
    return ([e for e in entities if e["id"] in seen],
            [r for r in relations if r["source"] in seen and r["target"] in seen])


MAX_NGRAM = 3
EXPANSION_FANOUT = 12  # an entity in more memories than this (a speaker, "Mom") expands nothing


def query_names(query: str) -> list[str]:
    """Every 1..3-word run of the query, lowercased: the names an entity id may be built from.
    Looking each up by id finds entities however the question spells their case."""
    tokens = [t.lower().removesuffix("'s") for t in re.findall(r"[\w'-]+", query)]
    return list(dict.fromkeys(" ".join(tokens[i:i + n]) for n in range(1, MAX_NGRAM + 1)
                              for i in range(len(tokens) - n + 1)))


def expansion(entities: list[dict[str, Any]], fanout: int = EXPANSION_FANOUT) -> set[str]:
    """The memories linked to the specific entities a query names: graph expansion's seeds.
    Entities in more than ``fanout`` memories are everywhere and say nothing about the query."""
    return {mid for e in entities if len(e.get("memory_ids", [])) <= fanout
            for mid in e.get("memory_ids", [])}
