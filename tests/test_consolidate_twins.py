"""The consolidator looks a new memory's duplicates up in an index of the kept memories' words
(``_Twins``) instead of testing it against every kept one: the same memories, merges, absorbed
ids and supersedes as the test against every kept memory, in the same order."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memorose_dagster.memory import consolidate, text
from memorose_dagster.memory.consolidate import MIN_JACCARD_WORDS, NEAR_DUPLICATE, consolidation

WORDS = ("bike", "red", "green", "car", "garden", "lisbon", "moved", "job", "acme", "piano",
         "lessons", "weekly", "sister", "visit", "paris", "coffee", "morning")


def same_words(a: str, b: str) -> bool:
    """Near-identical content words when both have 4 or more, else the same words."""
    mine, theirs = set(text.content_words(a)), set(text.content_words(b))
    if len(mine) >= MIN_JACCARD_WORDS and len(theirs) >= MIN_JACCARD_WORDS:
        return len(mine & theirs) / len(mine | theirs) >= NEAR_DUPLICATE
    return text.words(a) == text.words(b)


def every_kept(memory, kept, _words, _twins):
    """The duplicate test over every kept memory, as before the index."""
    def order(m):
        return m.created_at, m.source_event_ids[0]

    later = []
    for other in kept.values():
        if other.id == memory.id or not same_words(memory.content, other.content):
            continue
        if order(other) <= order(memory):
            return other, []
        later.append(other)
    return None, later


@st.composite
def turns(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Turns of two speakers whose sentences reuse a few words: exact, near (one word of ten
    changed) and short duplicates, in two streams."""
    sentences = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=11,
                                       unique=True), min_size=1, max_size=6))
    out = []
    for i in range(draw(st.integers(4, 24))):
        words = list(draw(st.sampled_from(sentences)))
        if draw(st.booleans()) and len(words) > 1:
            words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(WORDS))
        speaker = draw(st.sampled_from(["Ann", "Bob"]))
        out.append({"event_id": f"E{i:03d}", "tenant": "t", "user_id": "u",
                    "stream_id": draw(st.sampled_from(["s1", "s2"])),
                    "content": f"{speaker}: I {' '.join(words)}.",
                    "timestamp": 1_683_554_160.0 + draw(st.integers(0, 3)) * 60 + i})
    return out


def streams_of(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    streams: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(events, key=lambda e: e["event_id"]):
        streams.setdefault(event["stream_id"], []).append(event)
    return streams


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns(), st.data())
def test_looked_up_twins_consolidate_as_the_test_against_every_kept_memory(events, data):
    split = data.draw(st.integers(0, len(events)))
    first, second = events[:split], events[split:]
    with mock.patch.object(consolidate, "_duplicates", every_kept):
        made, _ = consolidation(first, streams_of(first), [])
    existing = [m.to_dict() for m in made]
    streams = streams_of(events)
    with mock.patch.object(consolidate, "_duplicates", every_kept):
        want = consolidation(second, streams, existing)
    got = consolidation(second, streams, existing)
    assert [m.to_dict() for m in got[0]] == [m.to_dict() for m in want[0]]
    assert got[1] == want[1]


def test_near_and_exact_duplicates_are_still_found():
    """Examples the generator above makes, checked by hand: a repeat merges into the first."""
    events = [{"event_id": f"E{i}", "tenant": "t", "user_id": "u", "stream_id": f"s{i}",
               "content": content, "timestamp": 1_683_554_160.0 + i}
              for i, content in enumerate([
                  "Ann: I moved to Lisbon for a new job at Acme with my sister.",
                  "Ann: I moved to Lisbon for a new job at Acme with my sister!",
                  "Ann: Coffee.", "Ann: Coffee."])]
    made, _ = consolidation(events, streams_of(events), [])
    sources = sorted(m.source_event_ids for m in made)
    assert ["E0", "E1"] in sources
