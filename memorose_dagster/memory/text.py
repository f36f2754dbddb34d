"""Small text statistics shared by the consolidator, the graph and insights."""

from __future__ import annotations

import math
import re
from collections import Counter

from memorose_dagster.lexicon import STOPWORDS

WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|\d+")
ENTITY = re.compile(r"\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)\b")

# Common English words that name no topic: feelings, praise, generic verbs and nouns, time words.
# Insights group memories by topic, and "good", "happy" or "seeing" would group anything.
COMMON_WORDS = frozenset("""
able absolutely actually ago agree agreed ahead almost alone along already always another anyway
away back bad beautiful believe best better big bit blast bring brings brought bye came can't
care cause chance change chat check close come comes coming congrats congratulations couple
crazy day days different doing done easy else end enjoy enjoyed enjoying even ever every
excited exciting fantastic feel feeling feelings feels felt find fine first found free friend
friends fun gave give gives giving glad goes gone good gotta guess happen happened happy hard
hear heard help helped helps hope hoping huge idea important incredible inspiring keep keeps
kind last later least left less life little long look looked looking looks lots love loved lovely
loves loving made make makes making mean means meant might mind moment moments month months
must need needed new next night old others part people perfect place plan planning pretty proud
put ready real right said say says see seeing seem seems seen share shared show special start
started still stuff stay take taking talk talked tell thought thinking tough tried try trying
two use used want wanted wants watch week weekend weeks whole wish wonderful work world wow
year years yesterday today tomorrow ya yep yet
accept acceptance accepted adore adorable appreciated beauty bond brave calm calming courage
creating difference dream dreams empowering encouragement encouraging express expressing
finding gorgeous grateful hilarious inspired inspiration joy journey lucky memories memory
motivated motivation passion passionate peace peaceful positive powerful remind reminds
showing since strength strong stunning support supported supportive supporting sweet
thankful thankfully touching true truly vibrant welcome
""".split())

# What people say to keep a conversation going: acknowledgements, greetings, sign-offs. A
# statement made only of these, common words and stop words states no fact ("See you there.",
# "Perfect.", "Exciting times.", "Thanks for the chat, talk soon.").
FILLER_WORDS = frozenset("""
alright anytime appreciated bye can't cheers chat course exactly excited fair fine goodbye haha
hah hahaha hmm hope hooray indeed lmao maybe morning noted nope omg please sorry soon sure
surely talk thanks tips times tonight totally true wait welcome yay yep yup evening
afternoon absolutely agreed awesome cool congrats congratulations lovely nice okay
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


def informative_words(said: str) -> list[str]:
    """The content words of a statement that are neither common nor filler words."""
    return [w for w in content_words(said) if w not in COMMON_WORDS and w not in FILLER_WORDS]


def content_free(said: str) -> bool:
    """True when a statement names nothing: only stop, common and filler words ("Perfect.",
    "See you there.", "Thanks, excited."). ``said`` is the text without its speaker."""
    return not informative_words(said)


def information(text: str) -> float:
    """Bits of unigram entropy over content words times their count: ~0 for 'ok', 'lol'."""
    tokens = content_words(text)
    if not tokens:
        return 0.0
    counts = Counter(tokens)
    total = len(tokens)
    entropy = -sum(c / total * math.log2(c / total) for c in counts.values())
    return (entropy + 1.0) * math.log2(1 + len(counts))
