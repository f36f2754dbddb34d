"""The local, deterministic consolidator: L0 events in, L1 memories out.

Pure: the same events give the same memories (and ids) on every run, whatever the batching.

- Noise ("ok", "lol", greetings: almost no information) is dropped.
- Each informative event becomes atomic memories, one per statement (sentence; thin ones like
  "Wow!" stay with their neighbour), that keep their conversational context: the turn's other
  statements and the turns before and after it in the same stream are stored as ``context`` and
  indexed for matching, so a statement that answers a question without repeating its words is
  still found through its neighbours. The returned ``content`` is the statement itself, with its
  resolved date, and the last one carries the start of the reply to the turn.
- Relative time ("yesterday", "last week") is resolved against the event's timestamp.
- Exact and near duplicates of an earlier memory of the same user merge into it.
- A newer value for the same subject and attribute (city, job, ...) supersedes the older memory,
  which stays readable as history (``superseded_by``) and ranks below the new one.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from typing import Any

from memorose_dagster.ids import stable_id
from memorose_dagster.memory import statements, text, timeparse
from memorose_dagster.records import Memory

DERIVATION = "local-v5"  # v4: statements, supersede wherever copied, filler out, spaCy entities;
# v5: derived ids without the tenant
NOISE_BITS = 1.5  # information() of "ok thanks" is 0, "see you" 1, a short real fact >= 3
NEAR_DUPLICATE = 0.9
CONTEXT_CHARS = 400
CONTEXT_TURNS = 2
REPLY_CHARS = 100  # the start of the answer to a turn travels with it (0: off)
REPLY_SEPARATOR = " / "
ATOM_BITS = 6.0  # a sentence with less information than this is not a statement of its own
ATOM_WORDS = 3
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[\"'])")
_LABEL = re.compile(r"\s*\[[^\]]*\d{4}\]\s*$")  # "[7 May 2023]", not "[shares a photo: ...]"


def own_text(content: str) -> str:
    """What a memory's own turn said (without the reply that travels with it)."""
    return content.split(REPLY_SEPARATOR, 1)[0]


def _clip(content: str, limit: int) -> str:
    return content if len(content) <= limit else content[:limit].rsplit(" ", 1)[0] + "..."


def said_text(content: str) -> str:
    """A memory's or turn's own statement: no speaker, no reply, no resolved-date label."""
    said = own_text(content)
    speaker = speaker_of(said, "")
    said = said[len(speaker) + 2:] if speaker else said
    return _LABEL.sub("", said)


def is_noise(content: str) -> bool:
    """Says nothing: little information, or only filler once the speaker's name is set aside
    (the name alone made "Ruth: Perfect." informative enough to keep)."""
    return text.information(content) < NOISE_BITS or text.content_free(said_text(content))


def importance(content: str, has_time: bool) -> float:
    """0..1: information content, plus first-person facts, named things and dates."""
    score = min(1.0, text.information(content) / 30.0)
    lowered = f" {content.lower()} "
    if any(w in lowered for w in (" i ", " my ", " i'm ", " we ", " our ")):
        score += 0.1
    score += 0.05 * min(2, len(text.entities(content))) + (0.1 if has_time else 0.0)
    return round(min(1.0, score), 4)


def speaker_of(content: str, default: str) -> str:
    head, sep, _ = content.partition(": ")
    return head if sep and 0 < len(head) <= 40 and "\n" not in head else default


@functools.lru_cache(maxsize=65_536)
def claims(content: str, default_subject: str) -> tuple[tuple[str, str, str, bool], ...]:
    """(subject, attribute, value) of what a memory states: its own statement's facts, and
    those of the reply that travels with it ("Assistant: Hi Alice! / Alice: I live in
    Seattle" states Alice's city too, so a later move supersedes that copy as well). The last
    item says whether the memory's own statement makes the claim.

    Cached: every run's supersede pass reads the claims of the user's fact-stating memories
    again, and the fact patterns are most of a run's own consolidation time."""
    own, _, reply = content.partition(REPLY_SEPARATOR)
    found = []
    for part in (own, reply) if reply else (own,):
        subject = speaker_of(part, default_subject).lower()
        found += [(subject, a, v, part is own) for a, v in statements.facts(part).items()]
    return tuple(found)


def _normalized(content: str) -> str:
    return " ".join(text.words(content))


MIN_JACCARD_WORDS = 4  # word sets are compared (Jaccard) only when both have this many


def _rank(word: str) -> int:
    return zlib.crc32(word.encode())


def prefix(words: frozenset[str]) -> list[str]:
    """The tokens two word sets with Jaccard >= NEAR_DUPLICATE must share one of (a longer
    prefix than the bound needs: floor, not ceil, is safe against rounding). The global order
    is a hash, not the alphabet: alphabetically a speaker's name or "about" led every prefix
    and made every memory a candidate for every probe (1M checks a run at 30k events)."""
    n = len(words)
    return sorted(words, key=_rank)[:n - math.floor(NEAR_DUPLICATE * n) + 1]


class _Twins:
    """A run's kept memories indexed by their words, in the order they are kept (a dict's
    order: a new id goes last, a replaced one keeps its place), so that the memories one may
    duplicate are looked up instead of found by testing it against every kept one (at 100k
    events a user's ~200 candidates against each of a run's ~80 new memories)."""

    def __init__(self, words: dict[str, frozenset[str]]):
        self._words = words
        self._place: dict[str, int] = {}  # id -> when it was put (its place in kept)
        self._next = 0
        self._keys: dict[str, tuple[str, list[str]]] = {}  # id -> (normalized, prefix tokens)
        self._by_text: dict[str, set[str]] = {}
        self._by_token: dict[str, set[str]] = {}

    def put(self, memory: Memory) -> None:
        """As ``kept[memory.id] = memory``."""
        if memory.id in self._place:
            self._unindex(memory.id)
        else:
            self._place[memory.id] = self._next
            self._next += 1
        normalized, tokens = self._index_keys(memory)
        self._keys[memory.id] = normalized, tokens
        self._by_text.setdefault(normalized, set()).add(memory.id)
        for token in tokens:
            self._by_token.setdefault(token, set()).add(memory.id)

    def drop(self, memory_id: str) -> None:
        """As ``del kept[memory_id]``."""
        self._unindex(memory_id)
        del self._place[memory_id]

    def candidates(self, memory: Memory) -> list[str]:
        """Every kept id whose memory may have the same words as ``memory`` (a superset of
        what ``_same_words`` accepts), in kept order."""
        normalized, tokens = self._index_keys(memory)
        found = set(self._by_text.get(normalized, ()))
        for token in tokens:
            found |= self._by_token.get(token, set())
        return sorted(found, key=self._place.__getitem__)

    def _index_keys(self, memory: Memory) -> tuple[str, list[str]]:
        words = _content_words(memory, self._words)
        return (_normalized(memory.content),
                prefix(words) if len(words) >= MIN_JACCARD_WORDS else [])

    def _unindex(self, memory_id: str) -> None:
        normalized, tokens = self._keys.pop(memory_id)
        self._by_text[normalized].discard(memory_id)
        for token in tokens:
            self._by_token[token].discard(memory_id)


def _context(stream: list[dict[str, Any]], position: int) -> str:
    around = [stream[i]["content"][:CONTEXT_CHARS] for i in range(position - CONTEXT_TURNS,
                                                                   position + CONTEXT_TURNS + 1)
              if i != position and 0 <= i < len(stream)]
    return " ".join(around)


def _reply(stream: list[dict[str, Any]], position: int) -> dict[str, Any] | None:
    """The next turn when another speaker says it: the answer to this one."""
    if position + 1 >= len(stream) or not REPLY_CHARS:
        return None
    turn, after = stream[position], stream[position + 1]
    if speaker_of(after["content"], "") == speaker_of(turn["content"], "") \
            or text.information(after["content"]) < NOISE_BITS \
            or text.content_free(said_text(after["content"])):
        return None
    return after


def atoms(said: str) -> list[str]:
    """A turn split into atomic statements: its sentences, where one too thin to stand alone
    ("Wow!", "It was great.") stays with the statement before it (or after it, at the start)."""
    parts, pending = [], ""
    for sentence in _SENTENCE.split(said.strip()):
        if not sentence:
            continue
        thin = text.information(sentence) < ATOM_BITS \
            or len(text.content_words(sentence)) < ATOM_WORDS or text.content_free(sentence)
        if thin and parts:
            parts[-1] += " " + sentence
        elif thin:
            pending += sentence + " "
        else:
            parts.append(pending + sentence)
            pending = ""
    if pending:  # only thin sentences: the turn is one statement
        parts.append(pending.strip())
    return parts or [said]


def first_memory_id(event_id: str) -> str:
    """The id of the first statement's memory of an event (the local consolidator's). Derived
    ids leave the tenant out (keys are tenant-scoped): a tenant's memory imported into another
    derives the same ids there, so lookups by recipe and reruns find what was imported."""
    return stable_id("l1", event_id, "0")


@dataclass(frozen=True, slots=True)
class _Statement:
    """One statement of a turn, as far as the turn alone says: the same in every stream around
    it, so it is worked out once however many memories are made of the turn."""

    part: str  # the statement as said
    content: str  # with the speaker
    shown: str  # with the resolved date's label
    valid_from: float
    time_label: str
    importance: float
    keywords: tuple[str, ...]
    entities: tuple[str, ...]
    subject: str
    attribute: str
    value: str


@functools.lru_cache(maxsize=8192)
def _statements(content: str, timestamp: float, user_id: str) -> tuple[_Statement, ...]:
    """A turn's statements. Cached: a run makes a turn's memories up to three times (with and
    without its reply to ask the node for candidates, then in the consolidation), and working a
    statement out (its sentences, date, facts, keywords, entities) is most of the cost."""
    speaker = speaker_of(content, "")
    said = content[len(speaker) + 2:] if speaker else content
    out = []
    for part in atoms(said):
        stated_as = f"{speaker}: {part}" if speaker else part
        resolved = timeparse.resolve(part, timestamp)
        stated = claims(stated_as, user_id)
        subject, attribute, value, _ = stated[0] if stated else ("", "", "", True)
        out.append(_Statement(
            part=part, content=stated_as,
            shown=f"{stated_as} [{resolved.label()}]" if resolved else stated_as,
            valid_from=datetime.combine(resolved.start, time(), UTC).timestamp() if resolved
            else timestamp, time_label=resolved.label() if resolved else "",
            importance=importance(stated_as, bool(resolved)),
            keywords=tuple(text.keywords(part)), entities=tuple(text.entities(stated_as)),
            subject=subject, attribute=attribute, value=value))
    return tuple(out)


def memories_for(event: dict[str, Any], context: str,
                 reply: dict[str, Any] | None = None) -> list[Memory]:
    """The atomic memories of one turn. Each is one statement, with the turn's other statements
    and its neighbouring turns as ``context``; the reply travels with the last statement (the
    one it answers). A turn of one statement keeps the id it always had."""
    said = _statements(event["content"], event["timestamp"], event["user_id"])
    memories = []
    for index, statement in enumerate(said):
        shown = statement.shown
        sources = [event["event_id"]]
        if reply is not None and index == len(said) - 1:
            shown += REPLY_SEPARATOR + _clip(reply["content"], REPLY_CHARS)
            sources.append(reply["event_id"])
        others = " ".join(s.part for i, s in enumerate(said) if i != index)
        memories.append(Memory(
            id=first_memory_id(event["event_id"]) if index == 0
            else stable_id("l1", event["event_id"], str(index)),
            tenant=event["tenant"], user_id=event["user_id"], stream_id=event["stream_id"],
            content=shown, source_event_ids=sources, importance=statement.importance,
            keywords=list(statement.keywords), entities=list(statement.entities),
            valid_from=statement.valid_from, created_at=event["timestamp"],
            derivation=DERIVATION, context=f"{others} {context}".strip(),
            time_label=statement.time_label, subject=statement.subject,
            attribute=statement.attribute, value=statement.value))
    return memories


def consolidate(targets: Iterable[dict[str, Any]], streams: dict[str, list[dict[str, Any]]],
                existing: list[dict[str, Any]]) -> list[Memory]:
    """The memories of ``consolidation``: new ones and existing ones that changed."""
    return consolidation(targets, streams, existing)[0]


def consolidation(targets: Iterable[dict[str, Any]], streams: dict[str, list[dict[str, Any]]],
                  existing: list[dict[str, Any]]) -> tuple[list[Memory], list[str]]:
    """Memories for ``targets`` (events), using ``streams`` (stream id -> the user's events of
    that stream in order) for context and ``existing`` memories of the same user for merges and
    supersedes. Returns new memories and the existing ones that changed, and the ids of existing
    memories merged into an earlier one derived now (to retire).

    Whatever order a user's events are derived in, the outcome is the same: a duplicate merges
    into the earliest memory saying it, so one derived before an earlier duplicate is merged
    into that one when it comes (``absorbed``); a memory derived again keeps the later
    duplicates merged into it since."""
    targets = list(targets)
    position = {e["event_id"]: (sid, i) for sid, evs in streams.items()
                for i, e in enumerate(evs)}
    kept = {m["id"]: Memory.from_dict(m) for m in existing}
    changed: dict[str, Memory] = {}
    absorbed: set[str] = set()
    words: dict[str, frozenset[str]] = {}
    twins = _Twins(words)
    for memory in kept.values():
        twins.put(memory)
    deriving = {e["event_id"] for e in targets}
    for event in sorted(targets, key=lambda e: (e["timestamp"], e["event_id"])):
        if event.get("content_type", "text") != "text" or is_noise(event["content"]):
            continue
        sid, i = position.get(event["event_id"], (None, 0))
        for memory in (memories_for(event, _context(streams[sid], i), _reply(streams[sid], i))
                       if sid is not None else memories_for(event, "")):
            memory = _keeping_merged(memory, kept.get(memory.id), deriving)
            twin, later = _duplicates(memory, kept, words, twins)
            if twin is not None:
                merged = sorted({*twin.source_event_ids, *memory.source_event_ids})
                twin = replace(twin, source_event_ids=merged)
                kept[twin.id] = changed[twin.id] = twin  # the same text: indexed as it was
                continue
            for other in later:
                merged = sorted({*memory.source_event_ids, *other.source_event_ids})
                memory = replace(memory, source_event_ids=merged)
                del kept[other.id]
                twins.drop(other.id)
                changed.pop(other.id, None)
                absorbed.add(other.id)
            absorbed.discard(memory.id)
            kept[memory.id] = changed[memory.id] = memory
            twins.put(memory)
    for memory in kept.values():  # superseded by one merged away: the chain is made again
        if memory.superseded_by in absorbed:
            kept[memory.id] = changed[memory.id] = replace(memory, superseded_by=None)
    for memory in _supersede(kept):
        changed[memory.id] = memory
    return sorted(changed.values(), key=lambda m: m.id), sorted(absorbed)


def _order(memory: Memory) -> tuple[float, str]:
    return memory.created_at, memory.source_event_ids[0]  # event ids sort by ingest time


def _duplicates(memory: Memory, kept: dict[str, Memory], words: dict[str, frozenset[str]],
                twins: _Twins) -> tuple[Memory | None, list[Memory]]:
    """The first kept memory saying what ``memory`` says, earlier (it merges into that one);
    else every one saying it later: derived before it (a run over newer events went first),
    they would have merged into it had it been there. Tested on ``twins``' candidates only, in
    kept order: the same answer as over every kept memory."""
    later = []
    for other in map(kept.__getitem__, twins.candidates(memory)):
        if other.id == memory.id or not _same_words(memory, other, words):
            continue
        if _order(other) <= _order(memory):
            return other, []
        later.append(other)
    return None, later


def _same_words(memory: Memory, other: Memory, words: dict[str, frozenset[str]]) -> bool:
    """Near-identical content words when both have 4 or more, else the same words."""
    mine, theirs = _content_words(memory, words), _content_words(other, words)
    if len(mine) >= MIN_JACCARD_WORDS and len(theirs) >= MIN_JACCARD_WORDS:
        return len(mine & theirs) / len(mine | theirs) >= NEAR_DUPLICATE
    return _normalized(other.content) == _normalized(memory.content)


def _keeping_merged(memory: Memory, stored: Memory | None, deriving: set[str]) -> Memory:
    """``memory`` derived again keeps the sources its stored self gained from later duplicates
    merged into it, unless those are derived in this run too (they merge again) or another
    logic made it."""
    if stored is None or stored.derivation != memory.derivation:
        return memory
    merged = set(stored.source_event_ids) - set(memory.source_event_ids) - deriving
    if not merged:
        return memory
    return replace(memory, source_event_ids=sorted({*memory.source_event_ids, *merged}))


def _content_words(memory: Memory, words: dict[str, frozenset[str]]) -> frozenset[str]:
    """A memory's content words, computed once per run and text (``setdefault`` evaluated its
    default, the tokenizing, on every comparison of a new memory with a kept one; by id, a
    memory derived again was compared with its stored text)."""
    found = words.get(memory.content)
    if found is None:
        found = words[memory.content] = frozenset(text.content_words(memory.content))
    return found


def _supersede(memories: dict[str, Memory]) -> list[Memory]:
    """Every memory that states an older value of a (subject, attribute), in its own words or
    in the reply it carries, is marked superseded by the newest memory stating another value."""
    holders: dict[tuple[str, str], list[tuple[str, str]]] = {}  # -> [(value, memory id)]
    newest: dict[str, tuple[str, tuple[str, str, str]]] = {}  # old id -> (new id, its claim)
    said_by: dict[tuple[str, str, str], str] = {}  # claim -> first memory saying it itself
    for memory in sorted(memories.values(), key=_order):
        for subject, attribute, value, own in claims(memory.content, memory.user_id):
            if own:
                said_by.setdefault((subject, attribute, value), memory.id)
            held = holders.setdefault((subject, attribute), [])
            for old_value, old_id in held:
                if old_value != value and old_id != memory.id:
                    newest[old_id] = (memory.id, (subject, attribute, value))
            held[:] = [(v, i) for v, i in held if v == value] + [(value, memory.id)]
    updates = []
    for old_id, (new_id, claim) in sorted(newest.items()):
        new_id = said_by.get(claim, new_id)  # the memory that says it, not a reply's copy
        if memories[old_id].superseded_by != new_id:
            memories[old_id] = replace(memories[old_id], superseded_by=new_id)
            updates.append(memories[old_id])
    return updates
