"""The knowledge graph from L1 memories: entities and typed, weighted edges with provenance."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from itertools import combinations
from typing import Any

from memorose_dagster.ids import stable_id
from memorose_dagster.memory import readings
from memorose_dagster.memory.consolidate import speaker_of
from memorose_dagster.records import Entity, Relation

Mention = tuple[str, str]  # (name, kind): person, organisation, place, thing; or noun
# What an entity extractor does (models/ner.py): for each text, its mentions.
Extract = Callable[[list[str]], list[list[Mention]]]
ENTITY_KINDS = ("person", "organisation", "place", "thing")


def entity_id(user_id: str, name: str) -> str:
    """Without the tenant, as every derived id (see ``consolidate.first_memory_id``)."""
    return stable_id("ent", user_id, name.lower())


_ORG_WORDS = ("Inc", "Corp", "Company", "University", "College", "School", "Bank", "Agency",
              "Foundation", "Institute", "Hospital", "Group", "Club", "Society", "Studio")
_RELATIVES = r"(?:friend|sister|brother|mom|mum|dad|mother|father|wife|husband|partner|son|" \
             r"daughter|boss|colleague|cousin|aunt|uncle|grandma|grandpa|neighbou?r|mentor)"


def entity_type(name: str, text: str, speakers: set[str]) -> str:
    """person, organisation, place or thing, from how ``text`` mentions ``name``."""
    if name.lower() in speakers:
        return "person"
    quoted = re.escape(name)
    if name.split()[-1] in _ORG_WORDS or re.search(
            rf"\b(?:work(?:s|ed|ing)?|job|intern(?:ship)?|employed|hired|hiring)\s+"
            rf"(?:\w+\s+)?(?:at|for|with|by)\s+{quoted}\b", text):
        return "organisation"
    if re.search(rf"\b(?:my|our|his|her|their)\s+(?:\w+\s+)?{_RELATIVES}\s*,?\s+{quoted}\b"
                 rf"|\b{quoted}\s+(?:said|says|told|thinks|texted|called me)\b"
                 rf"|\b(?:with|told|met|asked)\s+{quoted}\b(?!\s+(?:city|park|river|street))",
                 text):
        return "person"
    if re.search(rf"\b(?:in|to|from|near|around|visit(?:ed|ing)?|moved to|trip to)\s+{quoted}\b",
                 text):
        return "place"
    return "thing"


def _aliases(names: dict[str, str], types: dict[str, str]) -> dict[str, str]:
    """Short forms of people merged into the full name: "Mel" -> "Melanie", "Maria" ->
    "Maria Lopez", when exactly one person's name starts with the short form."""
    people = [n for n in names if types.get(n) == "person"]
    merged = {}
    for short in names:
        if len(short) < 3 or " " in short:
            continue
        longer = [n for n in people if n != short and (
            n.startswith(short + " ") or (" " not in n and n.startswith(short)))]
        if len(longer) == 1 and types.get(short, "thing") in ("person", "thing"):
            merged[short] = longer[0]
    return merged


def named(found: list[Mention]) -> list[Mention]:
    """The named entities among an extractor's mentions (not its nouns)."""
    return [(name, kind) for name, kind in found if kind in ENTITY_KINDS]


def mentions(memories: list[dict[str, Any]], extract: Extract | None,
             speakers: set[str]) -> list[list[Mention]]:
    """The typed entities each memory names. Without an extractor: the memory's stored
    ``entities`` typed by how the text mentions them; with one: the speaker (a person) and the
    extractor's entities in the memory's own statement (its stored reading where current)."""
    if extract is None:
        return [[(name, entity_type(name, m["content"], speakers))
                 for name in m.get("entities", [])] for m in memories]
    found = readings.read(memories, extract)
    out = []
    for memory, said in zip(memories, found, strict=True):
        speaker = speaker_of(memory["content"], "")
        own = [(speaker, "person")] if speaker else []
        out.append(own + [(n, mention_type(n, k, memory["content"], speakers))
                          for n, k in named(said) if n.lower() != speaker.lower()])
    return out


def mention_type(name: str, kind: str, text: str, speakers: set[str]) -> str:
    """How the text mentions a name ("my sister Maria", "moved to Lisbon") over the
    extractor's guess, which the small model often gets wrong for a lone first name."""
    cue = entity_type(name, text, speakers)
    return kind if cue == "thing" else cue


def build_graph(memories: list[dict[str, Any]], extract: Extract | None = None,
                ) -> tuple[list[Entity], list[Relation]]:
    """Entities named in ``memories`` (by ``extract``, else the memories' stored entities),
    typed (person, organisation, place, thing, by majority over their mentions) and with short
    forms of people merged in as aliases; ``mentioned_in`` edges entity -> memory, and
    ``co_occurs`` edges between entities named in the same memory (weight = shared memories)."""
    memories = sorted(memories, key=lambda m: m["id"])
    speakers = {speaker_of(m["content"], "").lower() for m in memories} - {""}
    found = mentions(memories, extract, speakers)
    names: dict[str, str] = {}  # lowercased -> first spelling seen
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for said in found:
        for name, kind in said:
            key = names.setdefault(name.lower(), name).lower()
            votes[key][kind] += 1
    types = {key: _vote(counts) for key, counts in votes.items()}
    canonical = _aliases(names, types)
    # keyed by (tenant, id): ids leave the tenant out, and a run may hold several tenants
    entities: dict[tuple[str, str], Entity] = {}
    relations: dict[tuple[str, str], Relation] = {}
    for memory, said in zip(memories, found, strict=True):
        tenant, user = memory["tenant"], memory["user_id"]
        ids = []
        for name, _ in said:
            key = canonical.get(name.lower(), name.lower())
            eid = entity_id(user, key)
            entity = entities.setdefault((tenant, eid), Entity(
                id=eid, tenant=tenant, user_id=user, name=names[key],
                entity_type=types[key],
                aliases=sorted(names[a] for a, full in canonical.items() if full == key)))
            entity.memory_ids = sorted({*entity.memory_ids, memory["id"]})
            ids.append(eid)
            rid = stable_id("rel", eid, "mentioned_in", memory["id"])
            relations[tenant, rid] = Relation(
                id=rid, tenant=tenant, user_id=user, source=eid, target=memory["id"],
                relation="mentioned_in", timestamp=memory.get("valid_from") or 0.0,
                source_event_ids=list(memory["source_event_ids"]))
        for a, b in combinations(sorted(set(ids)), 2):
            rid = stable_id("rel", a, "co_occurs", b)
            edge = relations.get((tenant, rid))
            if edge is None:
                relations[tenant, rid] = Relation(
                    id=rid, tenant=tenant, user_id=user, source=a, target=b,
                    relation="co_occurs", weight=1.0, timestamp=memory.get("valid_from") or 0.0,
                    source_event_ids=list(memory["source_event_ids"]))
            else:
                edge.weight += 1.0
                edge.source_event_ids = sorted({*edge.source_event_ids,
                                                *memory["source_event_ids"]})
                edge.timestamp = max(edge.timestamp, memory.get("valid_from") or 0.0)
    return list(entities.values()), list(relations.values())


def _vote(counts: Counter[str]) -> str:
    """The most frequent type other than the default; ties in order person, org, place."""
    typed = [(n, -["person", "organisation", "place"].index(t)) for t, n in counts.items()
             if t != "thing"]
    if not typed:
        return "thing"
    best = max(typed)
    return ["person", "organisation", "place"][-best[1]]


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
