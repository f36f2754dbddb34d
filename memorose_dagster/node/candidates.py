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

What a record contributes is computed once per stored version: the user's listing holds the
log index that last wrote each record, so a run reads the listing, then only the records it has
not analysed at that version and those it picks (a multi-get each), and sends only the
candidates. (In a store written before listings held versions, every record is read and its
bytes' digest stands for the version.)
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
    tokens: frozenset[str]  # the prefix filter's tokens; empty when too few words to compare


def traits_of(content: str, user_id: str, sources: Iterable[str] = ()) -> Traits:
    words = frozenset(text.content_words(content))
    return Traits(words, " ".join(text.words(content)), bool(claims(content, user_id)),
                  tuple(sources),
                  frozenset(prefix(words)) if len(words) >= MIN_JACCARD_WORDS else frozenset())


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
        if self.by_token.keys().isdisjoint(traits.tokens):  # most memories: one C-level test
            return False
        n = len(traits.words)
        return any(min(n, len(probe)) >= NEAR_DUPLICATE * max(n, len(probe)) - 1e-9
                   and near_duplicates(traits.words, probe)  # sizes first: J <= min / max
                   for token in traits.tokens for probe in self.by_token.get(token, ()))


class Candidates:
    """Picks a user's memories for a consolidator run (see the module docstring)."""

    def __init__(self, store: Store):
        self._store = store
        # record key -> (version, traits): the version is the log index in the user's listing
        # (or, in a store written before listings held one, a digest of the record's bytes)
        self._traits: dict[bytes, tuple[bytes, Traits]] = {}
        self._lock = threading.Lock()

    def l1(self, tenant: str, user_id: str, contents: list[str], ids: Iterable[str],
           event_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The user's L1 memories the run may merge into, supersede or retire, by id."""
        probes, wanted, run_events = Probes(contents), set(ids), set(event_ids)
        listing = keys.user_derived_prefix("l1", tenant, user_id)
        versions = [(key[len(listing):].decode(), version)
                    for key, version in self._store.iter_prefix(listing)]
        record_keys = [keys.derived("l1", tenant, rid) for rid, _ in versions]
        known: list[Traits | None] = []
        with self._lock:
            for key, (_, version) in zip(record_keys, versions, strict=True):
                cached = self._traits.get(key) if len(version) == keys.VERSION_BYTES else None
                known.append(cached[1] if cached is not None and cached[0] == version else None)
        # Only records not analysed at their version are read to be analysed; of the rest, only
        # those picked are read.
        unknown = [i for i, traits in enumerate(known) if traits is None]
        raws: dict[int, bytes | None] = dict(zip(
            unknown, self._store.get_raw_many([record_keys[i] for i in unknown]), strict=True))
        decoded: dict[int, dict[str, Any] | None] = {}
        for i in unknown:
            if raws[i] is not None:
                known[i], decoded[i] = self._analysed(record_keys[i], versions[i][1], raws[i],
                                                      user_id)
        picked = [i for i, traits in enumerate(known) if traits is not None and (
            versions[i][0] in wanted or traits.states_fact or probes.may_merge(traits)
            or (traits.sources and run_events.issuperset(traits.sources)))]
        unread = [i for i in picked if i not in raws]
        raws.update(zip(unread, self._store.get_raw_many([record_keys[i] for i in unread]),
                        strict=True))
        return [decoded.get(i) or unpack(raws[i]) for i in picked if raws[i] is not None]

    def _analysed(self, key: bytes, version: bytes, raw: bytes,
                  user_id: str) -> tuple[Traits, dict[str, Any] | None]:
        """The record's traits, and the record if it had to be decoded for them."""
        if len(version) != keys.VERSION_BYTES:
            version = hashlib.blake2b(raw, digest_size=16).digest()
            with self._lock:
                cached = self._traits.get(key)
            if cached is not None and cached[0] == version:
                return cached[1], None
        record = unpack(raw)
        traits = traits_of(record["content"], record.get("user_id", user_id),
                           record.get("source_event_ids", ()))
        with self._lock:
            if len(self._traits) >= CACHE_LIMIT:
                self._traits.clear()
            self._traits[key] = (version, traits)
        return traits, record
