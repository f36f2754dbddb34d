"""Hybrid ranking: BM25 and vector similarity fused, then adjusted by what the memory is.

Weighted score fusion, not reciprocal-rank fusion: on LoCoMo, RRF scattered runs of adjacent turns
that BM25 ranks together (0.58 vs 0.66 Recall@10 measured on the dev split), because it throws
away how far apart the scores are. After fusion: raw events rank below memories, superseded
memories are demoted below their replacement, importance nudges, questions about time favour
memories that carry a date, memories linked to an entity the query names (graph expansion) get a
small boost, and a result whose source events are all covered by a better one is dropped (an
event and the memory made from it say the same thing). A request for a suggestion ("what should
I cook for Dana's family?") lifts the best few preferences the person stated; a question about
now lets the memory that replaced a matching superseded one in at its score
(``node/retrieval.py``), so "is Maya still in Austin?" finds Portland.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from memorose_dagster.lexicon import STOPWORDS
from memorose_dagster.memory import statements, text
from memorose_dagster.memory.consolidate import said_text, speaker_of
from memorose_dagster.memory.timeparse import Resolved, query_range

TEXT_WEIGHT = 0.7
VECTOR_WEIGHT = 0.3
SUPERSEDED_FACTOR = 0.5
# "Where does she live now?": the latest value, and the old one well below it; "where did she
# live before?": history ranks as it matches.
NOW_SUPERSEDED_FACTOR = 0.2
RECENCY_BOOST = 0.15  # on "now" questions, the newest candidate x1.15, the oldest x1.0
_NOW = re.compile(r"\b(now|currently|current|still|these days|nowadays|at the moment|"
                  r"any ?more|today|lately|recently)\b", re.IGNORECASE)
_PAST = re.compile(r"\b(before|used to|previous(ly)?|former(ly)?|earlier|originally|"
                   r"old|past|history|back then)\b", re.IGNORECASE)
IMPORTANCE_WEIGHT = 0.1
TIME_BOOST = 1.15
SPEAKER_BOOST = 1.25  # "What did Caroline say..." favours what Caroline said
# Insights compete with memories as equals: one that matches as well answers more, quoting one
# person on one topic across sessions ("where has Melanie camped?"). Raw events rank below the
# memories made from them.
LAYER_FACTOR = {"L0": 0.9, "L1": 1.0, "L2": 1.0}
# A statement that names nothing ("Perfect.", "See you there.") matched only through the
# speaker's name or its neighbours; on the semantics bench it was the top result for 40% of
# answerable questions. Raw events and memories made before the noise filter saw it keep it.
FILLER_FACTOR = 0.2
IN_RANGE_BOOST = 1.3  # "what did I do in May 2023?": memories dated inside the range
GRAPH_BOOST = 1.1  # a memory linked to an entity the query names
# "Where does Alice live now?": a memory stating a city answers it in whatever words it used
# ("I signed a lease on a flat in Denver"), while the speaker's small talk matches the name.
ATTRIBUTE_BOOST = 1.5
# "What should I cook when Dana's family comes?": what the person said they like, need or cannot
# have ("at home we only eat plant-based") answers a request for a suggestion in other words.
PREFERENCE_BOOST = 1.3
# ... and it shares no word with the request, so neither index scores it near what does share
# words ("Anything quick ... Sheet-pan dinners" for "dinner"): the best few preferences stated
# by the person the suggestion is for are lifted to at least this share of the best result, in
# their own order (a few, so a long history of likes does not crowd out the rest).
PREFERENCE_SEED = 0.8
PREFERENCES_SEEDED = 3
PREFERENCE_POOL = 100  # vector candidates of a request for a suggestion: preferences share no word
_SUGGESTION = re.compile(r"\b(should|suggest|recommend|could|would be a good|ideas?|plan|"
                         r"bring|book|booking|gift|present)\b", re.IGNORECASE)
_PREFERENCE = re.compile(r"\b(love|loves|hate|hates|prefer|prefers|rather|always|never|"
                         r"can't stand|allergic|intolerant|favou?rite|only eat|don't eat|"
                         r"can't eat|won't eat|for me|makes? me|makes? my|gives? me|puts? me|"
                         r"need|can't|enjoy|adore|dislike|not a fan)\b", re.IGNORECASE)
GRAPH_SEED = 0.3  # a linked memory neither index found starts at this share of the best match
_TIME_QUESTION = re.compile(r"\b(when|what (year|month|day|date|time)|how long|since|until|"
                            r"before|after|ago|last (week|month|year))\b", re.IGNORECASE)


def without_speakers(query: str, speakers: set[str]) -> str:
    """The query for BM25 without the names of the people who speak in the history: "Ruth"
    matches every turn Ruth said, and her shortest small talk ("Ticket to Ride mostly") beat
    what answers "which festivals has Ruth been to?". The speaker boost still favours her turns.
    The query as it was when nothing else would be left."""
    kept = [w for w in re.findall(r"[\w'-]+", query)
            if w.lower().removesuffix("'s").removesuffix("’s") not in speakers]
    rest = [w for w in kept if w.lower() not in STOPWORDS]
    return " ".join(kept) if rest else query


def bm25_query(query: str, speakers: set[str]) -> str:
    """What BM25 looks for. A question about an attribute of a person ("where does Alice live
    now?") keeps the name, which holds her own statements in the pool, and gains the words a
    change of that attribute is said with; any other question leaves the speakers' names out
    (``without_speakers``)."""
    if statements.asked(query):
        return statements.expanded(query)
    return without_speakers(query, speakers)


def fuse(text_hits: Iterable[tuple[str, float]], vector_hits: Iterable[tuple[str, float]],
         text_weight: float | None = None, vector_weight: float | None = None,
         ) -> list[tuple[str, float]]:
    """Score = w_t * bm25 / max(bm25) + w_v * max(cosine, 0); best first, ties by id."""
    text_weight = TEXT_WEIGHT if text_weight is None else text_weight
    vector_weight = VECTOR_WEIGHT if vector_weight is None else vector_weight
    text_hits = list(text_hits)
    top = max((score for _, score in text_hits), default=0.0)
    scores: dict[str, float] = {}
    if top > 0:
        for record_id, score in text_hits:
            scores[record_id] = text_weight * score / top
    for record_id, similarity in vector_hits:
        scores[record_id] = scores.get(record_id, 0.0) + vector_weight * max(similarity, 0.0)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class Candidate:
    id: str
    layer: str
    record: dict[str, Any]
    score: float
    sources: frozenset[str] = field(default_factory=frozenset)
    linked: bool = False  # in the graph, linked to an entity the query names
    why: dict[str, float] = field(default_factory=dict)  # the factors rank applied


def dated(candidate: Candidate) -> date | None:
    """The day a result is about: a memory's resolved date (or its event's), an event's time.
    Insights span many days and have none."""
    if candidate.layer == "L2":
        return None
    when = candidate.record.get("valid_from") or candidate.record.get("timestamp")
    return datetime.fromtimestamp(float(when), UTC).date() if when else None


def asks_about_past(query: str) -> bool:
    return bool(_PAST.search(query))


def wants_current(query: str) -> bool:
    """"Where does she live now?", "is he still at Globex?": the latest value is wanted."""
    return bool(_NOW.search(query)) and not _PAST.search(query)


def attributes_asked(query: str, candidates: Iterable[Candidate]) -> frozenset[str]:
    """The attributes a question asks about: by its words ("where does she live?": city), or
    by a value it names that a candidate states ("is Maya still in Austin?": city)."""
    lowered = query.lower()
    named = {c.record["attribute"] for c in candidates
             if c.record.get("attribute") and len(c.record.get("value") or "") > 2
             and re.search(rf"\b{re.escape(c.record['value'])}\b", lowered)}
    return frozenset(statements.asked(query)) | named


def superseded_factor(query: str) -> float:
    """How much a superseded memory counts for this question: history questions want it."""
    if _PAST.search(query):
        return 1.0
    return NOW_SUPERSEDED_FACTOR if _NOW.search(query) else SUPERSEDED_FACTOR


@functools.lru_cache(maxsize=65_536)
def says_nothing(content: str) -> bool:
    """The statement names nothing (filler). Cached: a user's questions meet the same records
    again and again, and the word patterns were a tenth of a retrieve's own time."""
    return text.content_free(said_text(content))


def _factors(candidate: Candidate, time_question: bool, query_words: frozenset[str],
             about: Resolved | None, stale: float, attributes: frozenset[str] = frozenset(),
             suggestion: bool = False) -> dict[str, float]:
    """The multipliers the ranking applies to a candidate's fused score, by name (1.0 where
    one does not apply): what a retrieve with ``explain`` shows."""
    record = candidate.record
    day = dated(candidate) if about is not None else None
    return {
        "layer": LAYER_FACTOR[candidate.layer],
        "superseded": stale if record.get("superseded_by") else 1.0,
        "filler": FILLER_FACTOR if candidate.layer != "L2"
        and says_nothing(record.get("content", "")) else 1.0,
        "importance": 1.0 + IMPORTANCE_WEIGHT * (float(record.get("importance", 0.5)) - 0.5),
        "time_question": TIME_BOOST if time_question and record.get("time_label") else 1.0,
        "in_range": IN_RANGE_BOOST if day is not None and about.start <= day <= about.end
        else 1.0,
        "graph": GRAPH_BOOST if candidate.linked else 1.0,
        "speaker": SPEAKER_BOOST if query_words
        and speaker_of(record.get("content", ""), "").lower() in query_words else 1.0,
        "attribute": ATTRIBUTE_BOOST if record.get("attribute") in attributes else 1.0,
        "preference": PREFERENCE_BOOST if suggestion and candidate.layer != "L2"
        and _PREFERENCE.search(said_text(record.get("content", ""))) else 1.0,
    }


def query_words(query: str) -> frozenset[str]:
    """The query's words, lowercased. "Caroline's" stays as it is: a question about someone's
    thing ("Caroline's identity") is not asking what she said (the speaker boost; lifting her
    turns there cost 0.01 held-out LoCoMo Recall@10)."""
    return frozenset(w.lower() for w in re.findall(r"[\w'-]+", query))


def _named(words: frozenset[str]) -> frozenset[str]:
    """The query's words with possessives as their name ("Dana's family": dana)."""
    return frozenset(w.removesuffix("'s") for w in words)


def factors(candidate: Candidate, query: str, now: float | None = None) -> dict[str, float]:
    """``_factors`` for one query, as ``rank`` reads it (without the recency of "now"
    questions, which depends on the other candidates)."""
    words = query_words(query)
    about = query_range(query, time.time() if now is None else now)
    return _factors(candidate, bool(_TIME_QUESTION.search(query)), words, about,
                    superseded_factor(query), frozenset(statements.asked(query)),
                    asks_for_suggestion(query))


def states_preference(candidate: Candidate, names: frozenset[str]) -> bool:
    """A memory in which a person the query names (``names``, lowercased) says what they
    like, need or cannot have."""
    content = candidate.record.get("content", "")
    return candidate.layer != "L2" and speaker_of(content, "").lower() in names \
        and bool(_PREFERENCE.search(said_text(content)))


def asks_for_suggestion(query: str) -> bool:
    return bool(_SUGGESTION.search(query))


def _seed_preferences(candidates: list[Candidate], words: frozenset[str]) -> None:
    best = max((c.score for c in candidates), default=0.0)
    names = _named(words)
    stated = sorted((c for c in candidates if states_preference(c, names)),
                    key=lambda c: (-c.score, c.id))[:PREFERENCES_SEEDED]
    for c in stated:
        lifted = best * PREFERENCE_SEED + (1 - PREFERENCE_SEED) * c.score
        if lifted > c.score:
            c.why["preference_seed"] = lifted / c.score if c.score else lifted
            c.score = lifted


def _prefer_recent(candidates: list[Candidate]) -> None:
    times = {c.id: float(c.record.get("created_at") or c.record.get("timestamp") or 0.0)
             for c in candidates if c.layer != "L2"}
    if len(set(times.values())) < 2:
        return
    low, high = min(times.values()), max(times.values())
    for c in candidates:
        if c.id in times:
            c.why["recency"] = 1.0 + RECENCY_BOOST * (times[c.id] - low) / (high - low)
            c.score *= c.why["recency"]


def rank(candidates: list[Candidate], query: str, top_k: int,
         now: float | None = None) -> list[Candidate]:
    """Adjust scores, then keep the best ``top_k`` whose sources are not already covered.
    A date range the query names ("in May 2023", "last week" as of ``now``) favours what falls
    inside it."""
    time_question = bool(_TIME_QUESTION.search(query))
    words = query_words(query)
    about = query_range(query, time.time() if now is None else now)
    stale = superseded_factor(query)
    attributes = attributes_asked(query, candidates)
    suggestion = asks_for_suggestion(query)
    # A raw event whose memory was superseded says the same old thing.
    outdated = {e for c in candidates if c.layer == "L1" and c.record.get("superseded_by")
                for e in c.sources}
    for candidate in candidates:
        if candidate.layer == "L0" and candidate.id in outdated:
            candidate.record = {**candidate.record, "superseded_by": "memory"}
        candidate.why = _factors(candidate, time_question, words, about, stale, attributes,
                                 suggestion)
        candidate.score *= math.prod(candidate.why.values())
    if suggestion:
        _seed_preferences(candidates, words)
    if wants_current(query):
        _prefer_recent(candidates)
    chosen: list[Candidate] = []
    covered: list[frozenset[str]] = []
    for candidate in sorted(candidates, key=lambda c: (-c.score, c.id)):
        if any(candidate.sources <= other for other in covered):
            continue
        chosen.append(candidate)
        covered.append(candidate.sources)
        if len(chosen) == top_k:
            break
    return chosen
