"""A result's relevance in 0..1: how likely it is to answer the question, read from signals that
mean the same on every query, so an agent can set one threshold (``min_relevance``).

A ranking score is only good for ordering one query's results: BM25 is normalised by the
query's best match, and the factors multiply. Relevance is a logistic map of four features:

- ``coverage``: the share of the question's content words (word forms folded, the names of
  the people who speak in the history left out: they match every turn of theirs) that the
  result's text contains;
- ``cosine``: the MiniLM similarity of question and result (0 when the vector index did not
  return it);
- ``share``: the result's score over the best result's score;
- ``margin``: how far the best result stands above the second, (s1 - s2) / s1, the same for
  every result of a query: a question the history cannot answer matches many things a little.

The coefficients were fit by logistic regression on the ``tune`` scenarios of
``bench/semantics.py`` only (label: the result carries the evidence the question needs;
``python bench/semantics.py --fit``); ``check`` scenarios measure them.
"""

from __future__ import annotations

import functools
import math
import re

from memorose_dagster.lexicon import STOPWORDS

# bias, coverage, cosine, share, margin: fit on the tune split (see the module docstring)
COEFFICIENTS = (-5.37, 2.52, 1.09, 3.32, 1.36)
_WORD = re.compile(r"[a-z][a-z'-]+|\d+")


def fold(word: str) -> str:
    """A word's form folded enough to match "festivals" with "festival", "cooked" with "cook"."""
    word = word.removesuffix("'s")
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)]
    return word


def terms(query: str, speakers: set[str]) -> set[str]:
    """The question's content words, folded, without the names of the history's speakers."""
    return {fold(w) for w in _WORD.findall(query.lower())
            if w not in STOPWORDS and w.removesuffix("'s") not in speakers and len(w) > 1}


def coverage(wanted: set[str], content: str) -> float:
    if not wanted:
        return 0.0
    return len(wanted & folded_words(content)) / len(wanted)


@functools.lru_cache(maxsize=16_384)
def folded_words(content: str) -> frozenset[str]:
    """A text's words, folded. Cached: the results of a user's questions repeat."""
    return frozenset(fold(w) for w in _WORD.findall(content.lower()))


def relevance(cover: float, cosine: float, share: float, margin: float,
              coefficients: tuple[float, ...] = COEFFICIENTS) -> float:
    bias, *weights = coefficients
    z = bias + sum(w * x for w, x in zip(weights, (cover, cosine, share, margin), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def features(scores: list[float], cosines: list[float], covers: list[float],
             ) -> list[tuple[float, float, float, float]]:
    """(coverage, cosine, share, margin) of each ranked result, best first."""
    if not scores:
        return []
    top = scores[0] if scores[0] > 0 else 1.0
    margin = (scores[0] - scores[1]) / top if len(scores) > 1 else 1.0
    return [(c, max(cos, 0.0), s / top, margin)
            for s, cos, c in zip(scores, cosines, covers, strict=True)]
