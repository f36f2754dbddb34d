"""Small text statistics shared by the consolidator, the graph and insights."""

from __future__ import annotations

import math
import re
from collections import Counter

WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|\d+")
ENTITY = re.compile(r"\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)\b")

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just like me more
most my myself no nor not now of off on once only or other our ours ourselves out over own really
same she should so some such than that the their theirs them themselves then there these they this
those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves yeah yes ok okay oh lol haha hey hi hello thanks thank
got get going go gonna im i'm it's that's don't dont also well much many one know think
awesome great amazing cool nice wow glad sounds sound appreciate definitely anything around
something everything things thing lot let let's really totally super sure way time
""".split())

NOT_ENTITIES = frozenset({"I", "The", "A", "An", "It", "We", "You", "He", "She", "They", "This",
                          "That", "My", "Your", "Yes", "No", "Oh", "Hey", "Hi", "Hello", "Thanks",
                          "Wow", "Ok", "Okay", "So", "But", "And", "Well", "What", "When", "Where",
                          "Why", "How", "Who", "Sure", "Great", "Good", "Nice", "Sounds", "That's",
                          "Haha", "Lol", "Yeah", "Also", "Just", "Do", "Did", "Is", "Are", "Was",
                          "Let", "Let's", "Thank", "Congrats", "Awesome", "Amazing"})


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1]


def keywords(text: str, limit: int = 8) -> list[str]:
    counts = Counter(content_words(text))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def entities(text: str) -> list[str]:
    """Capitalised word runs that are not sentence-initial function words, in order, unique."""
    seen: dict[str, None] = {}
    for match in ENTITY.findall(text):
        parts = [p for p in match.split() if p not in NOT_ENTITIES]
        if parts:
            seen.setdefault(" ".join(parts), None)
    return list(seen)


def information(text: str) -> float:
    """Bits of unigram entropy over content words times their count: ~0 for 'ok', 'lol'."""
    tokens = content_words(text)
    if not tokens:
        return 0.0
    counts = Counter(tokens)
    total = len(tokens)
    entropy = -sum(c / total * math.log2(c / total) for c in counts.values())
    return (entropy + 1.0) * math.log2(1 + len(counts))
