"""Of a user's memories, the ones a consolidator run over new events can touch: so a run reads
what its new events need, not the user's whole history.

The local consolidator (``memory/consolidate.py``) uses the user's existing memories in four
ways, and this module returns a superset of each, in the user's listing order (so "the first
match" the consolidator picks is the same as over all memories):

* merges: a new memory merges into an earlier one with near-identical content words (Jaccard
  >= ``NEAR_DUPLICATE`` when both have 4 or more) or, otherwise, the same normalised words, and
  takes in later ones derived before it (the test is symmetric: the same candidates).
  Found by the same-normalised-words map and by prefix filtering (two sets with Jaccard >= t
  share a token among the first ``n - floor(t n) + 1`` of each, in one global order), then
  checked exactly;
* supersedes: every memory that states a (subject, attribute) fact. All of them, not only those
  of the attributes the new events state: the chains are then recomputed as a full scan would,
  even where a forgotten memory left a chain stale;
* re-derivation: memories with the ids the new events derive, and those made only from the
  run's events (which a rerun retires when it no longer derives them).

What a record contributes is computed once per stored version (keyed by a digest of its
bytes), so a run reads the user's listing and values from RocksDB (one multi-get) but analyses
and unpacks only what changed since, and sends only the candidates.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.memory import text
from memorose_dagster.memory.consolidate import (
    MIN_JACCARD_WORDS,
    NEAR_DUPLICATE,
    claims,
    prefix,
)
from memorose_dagster.records import unpack

CACHE_LIMIT = 500_000  # analysed record versions kept; beyond it the cache starts over


@dataclass(frozen=True, slots=True)
class Traits:
    """What the consolidator looks at in one stored memory."""

    words: frozenset[str]
    normalized: str
    states_fact: bool
    sources: tuple[str, ...]


def traits_of(content: str, user_id: str, sources: Iterable[str] = ()) -> Traits:
    return Traits(frozenset(text.content_words(content)), " ".join(text.words(content)),
                  bool(claims(content, user_id)), tuple(sources))


def near_duplicates(a: frozenset[str], b: frozenset[str]) -> bool:
    return len(a & b) / len(a | b) >= NEAR_DUPLICATE


class Probes:
    """The contents of a run's new memories, indexed for the duplicate test."""

    def __init__(self, contents: Iterable[str]):
        self.normalized: set[str] = set()
        self.by_token: dict[str, list[frozenset[str]]] = {}
        for content in contents:
            words = frozenset(text.content_words(content))
            self.normalized.add(" ".join(text.words(content)))
            if len(words) >= MIN_JACCARD_WORDS:
                for token in prefix(words):
                    self.by_token.setdefault(token, []).append(words)

    def may_merge(self, traits: Traits) -> bool:
        if traits.normalized in self.normalized:
            return True
        if len(traits.words) < MIN_JACCARD_WORDS:
            return False
        n = len(traits.words)
        return any(min(n, len(probe)) >= NEAR_DUPLICATE * max(n, len(probe)) - 1e-9
                   and near_duplicates(traits.words, probe)  # sizes first: J <= min / max
                   for token in prefix(traits.words) for probe in self.by_token.get(token, ()))


class Candidates:
    """Picks a user's memories for a consolidator run (see the module docstring)."""

    def __init__(self, store: Store):
        self._store = store
        self._traits: dict[bytes, tuple[bytes, Traits]] = {}  # key -> (value digest, traits)
        self._lock = threading.Lock()

    def l1(self, tenant: str, user_id: str, contents: list[str], ids: Iterable[str],
           event_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The user's L1 memories the run may merge into, supersede or retire, by id."""
        probes, wanted, run_events = Probes(contents), set(ids), set(event_ids)
        listing = keys.user_derived_prefix("l1", tenant, user_id)
        record_keys = [keys.derived("l1", tenant, key[len(listing):].decode())
                       for key, _ in self._store.iter_prefix(listing)]
        out = []
        for key, raw in zip(record_keys, self._store.get_raw_many(record_keys), strict=True):
            if raw is None:
                continue
            traits, record = self._traits_of(key, raw, user_id)
            rid = key.rsplit(keys.SEP.encode(), 1)[1].decode()
            if rid in wanted or traits.states_fact or probes.may_merge(traits) \
                    or (traits.sources and run_events.issuperset(traits.sources)):
                out.append(record if record is not None else unpack(raw))
        return out

    def _traits_of(self, key: bytes, raw: bytes,
                   user_id: str) -> tuple[Traits, dict[str, Any] | None]:
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        cached = self._traits.get(key)
        if cached is not None and cached[0] == digest:
            return cached[1], None
        record = unpack(raw)
        traits = traits_of(record["content"], record.get("user_id", user_id),
                           record.get("source_event_ids", ()))
        with self._lock:
            if len(self._traits) >= CACHE_LIMIT:
                self._traits.clear()
            self._traits[key] = (digest, traits)
        return traits, record
