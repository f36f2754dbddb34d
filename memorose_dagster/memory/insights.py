"""L2 insights: what one person keeps coming back to across a user's memories, with stable ids.

An insight gathers the memories in which one speaker talks about one specific topic (a named
thing or a keyword, word forms folded: "camping", "camped" and "camp" are one topic), across
sessions: "Melanie on camping: ...". It quotes, in time order, the sentence of each member that
names the topic, so one result answers "where has Melanie camped?" with the evidence of several
conversations, each quote traceable to its memory and events. The members' whole turns are the
insight's ``context``: searched (BM25), not returned.

An insight's id depends only on (tenant, user, speaker, topic), so a rerun over more memories
updates the same insight in place instead of adding a second one.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from memorose_dagster.ids import stable_id
from memorose_dagster.lexicon import STOPWORDS
from memorose_dagster.memory import readings
from memorose_dagster.memory.consolidate import own_text, speaker_of
from memorose_dagster.memory.graph import ENTITY_KINDS, Extract, named
from memorose_dagster.memory.text import COMMON_WORDS, FILLER_WORDS
from memorose_dagster.records import Insight

MIN_MEMBERS = 3
MAX_MEMBERS = 5
MAX_SHARE = 0.05  # in more than 5% of a large user's memories, a topic is a theme of everything
QUOTE_CHARS = 80
TOPIC_KINDS = ("noun", "verb", "adjective")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def stem(word: str) -> str:
    """A crude English stem, enough to fold a topic's forms: camping/camped/camps -> camp."""
    word = word.lower().removesuffix("'s")
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + keep
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running -> runn -> run
            break
    return word


def topics(memory: dict[str, Any], speakers: set[str], names: list[str] | None = None,
           things: set[str] | None = None) -> dict[str, str]:
    """Stem -> surface form of the specific topics a memory's own turn names: its stored
    entities and keywords. With an entity extractor's reading, one of the turn's named entities
    (``names``), or a stored entity or keyword whose stem the extractor saw as a name, noun,
    verb or adjective somewhere in the user's memories (``things``): what a person would name
    ("camping", "research", "homeless", "Roskilde"), not "never", "together" or "everyone".
    Filler ("please") never."""
    found = [*(e.lower() for e in memory.get("entities", [])), *memory.get("keywords", [])]
    if names is not None and things is not None:
        found = [*(n.lower() for n in names), *(t for t in found if stem(t) in things)]
    return {stem(t): t for t in reversed(found)
            if t not in speakers and t not in STOPWORDS and t not in COMMON_WORDS
            and t not in FILLER_WORDS and len(t) > 2 and not t.isdigit() and "'" not in t
            and not t.endswith("ly")}


def quote(memory: dict[str, Any], topic_stem: str, speaker: str) -> str:
    """The sentence of the memory's own turn that names the topic, clipped, with its date."""
    said = own_text(memory["content"])
    if speaker and said.startswith(speaker + ": "):
        said = said[len(speaker) + 2:]
    sentences = _SENTENCE.split(said)
    hit = next((s for s in sentences if any(stem(w) == topic_stem
                                             for w in re.findall(r"[\w'-]+", s))), sentences[0])
    if len(hit) > QUOTE_CHARS:
        hit = hit[:QUOTE_CHARS].rsplit(" ", 1)[0] + "..."
    label = memory.get("time_label")
    return f"{hit} [{label}]" if label and label not in hit else hit


def derive_insights(memories: list[dict[str, Any]], extract: Extract | None = None,
                    ) -> list[Insight]:
    """One insight per (speaker, specific topic) that at least ``MIN_MEMBERS`` live memories of
    that speaker share, but no more than ``MAX_SHARE`` of all the user's memories: speakers and
    words that occur everywhere say nothing. An insight quotes its ``MAX_MEMBERS`` most important
    members, in time order, and names exactly those as members and their events as sources.
    Topics are read with ``extract`` (an entity extractor) when it is given, else from the
    memories' stored entities and keywords."""
    live = [m for m in memories if not m.get("superseded_by")]
    speakers = {speaker_of(m["content"], "").lower() for m in live} - {""}
    by_topic: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    forms: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
    found = readings.read(live, extract) if extract else [None] * len(live)
    things = {stem(word) for said in found if said for name, kind in said
              if kind in TOPIC_KINDS or kind in ENTITY_KINDS
              for word in (name, *name.split())} if extract else None
    for memory, said in zip(live, found, strict=True):
        speaker = speaker_of(memory["content"], "")
        names = [n for n, _ in named(said)] if said is not None else None
        for topic_stem, form in topics(memory, speakers, names, things).items():
            key = (memory["tenant"], memory["user_id"], speaker, topic_stem)
            by_topic[key].append(memory)
            forms[key][form] += 1
    ceiling = max(4 * MIN_MEMBERS, int(MAX_SHARE * len(live)))
    shares = Counter()
    for (tenant, user, _, topic_stem), members in by_topic.items():
        shares[(tenant, user, topic_stem)] += len(members)
    insights = []
    for key, members in sorted(by_topic.items()):
        tenant, user, speaker, topic_stem = key
        if len(members) < MIN_MEMBERS or shares[(tenant, user, topic_stem)] > ceiling:
            continue
        topic = max(sorted(forms[key]), key=lambda f: forms[key][f])
        members = sorted(members, key=lambda m: (-m.get("importance", 0.0), m["id"]))
        members = sorted(members[:MAX_MEMBERS],
                         key=lambda m: (m.get("valid_from") or m.get("created_at", 0.0), m["id"]))
        head = f"{speaker} on {topic}" if speaker else f"On {topic}"
        content = f"{head}: " + "; ".join(quote(m, topic_stem, speaker) for m in members)
        context = " ".join(own_text(m["content"]) for m in members)
        insights.append(Insight(
            id=stable_id("l2", user, "topic", speaker.lower(), topic_stem),
            tenant=tenant, user_id=user, topic=topic, content=content, context=context,
            member_ids=sorted(m["id"] for m in members),
            source_event_ids=sorted({e for m in members for e in m["source_event_ids"]}),
            importance=round(min(1.0, 0.3 + 0.1 * len(members)), 4),
            created_at=max(m.get("created_at", 0.0) for m in members), derivation="local-v2"))
    return insights
