"""What is true now, on concrete cases (pure functions): filler out of the way, newer values
superseding older ones wherever they were copied, calibrated relevance."""

from __future__ import annotations

from memorose_dagster.ids import new_id
from memorose_dagster.memory.consolidate import consolidate, is_noise
from memorose_dagster.memory.rank import Candidate, rank

MAR_2 = 1709373600.0  # 2024-03-02 10:00 UTC, a Saturday


def events(*contents, ts=MAR_2, stream="s", gap=60.0):
    return [dict(event_id=new_id(), tenant="t", user_id="u", stream_id=stream, content=c,
                 timestamp=ts + gap * i, content_type="text") for i, c in enumerate(contents)]


def derive(evs, existing=()):
    streams: dict[str, list] = {}
    for e in evs:
        streams.setdefault(e["stream_id"], []).append(e)
    return {m.id: m for m in consolidate(evs, streams, list(existing))}


def candidate(content, score=1.0, **fields):
    rid = new_id()
    return Candidate(rid, "L1", {"content": content, "importance": 0.5, **fields}, score,
                     frozenset({rid}))


def test_filler_is_noise_even_with_a_speaker_name():
    for filler in ("Ruth: Perfect.", "Hugo: Night.", "Farid: Exciting times.",
                   "Ruth: Thanks for the chat, talk soon.", "Chloe: Can't wait.",
                   "Assistant: Of course.", "Ben: lol", "Mona: Please."):
        assert is_noise(filler), filler
    for fact in ("Ruth: Glastonbury was muddy.", "Kira: Colder than I expected in Seattle.",
                 "Paula: I ordered a new debit card."):
        assert not is_noise(fact), fact
    kept = derive(events("Ruth: Perfect.", "Ruth: Primavera Sound had a good lineup.",
                         "Assistant: Of course."))
    assert [m.content for m in kept.values()] == ["Ruth: Primavera Sound had a good lineup."]


def test_content_free_results_rank_below_facts():
    filler, fact = candidate("Ruth: Perfect.", 1.0), candidate(
        "Ruth: Primavera Sound in Barcelona had such a good lineup. [2024]", 0.8)
    reply = candidate("Assistant: Congratulations on the new place! / Alice: See you there.", 1.0)
    found = rank([filler, fact, reply], "Which festivals has Ruth been to?", 3)
    assert found[0].id == fact.id


def test_a_lease_in_another_city_supersedes_every_copy_of_the_old_one():
    first = events("Assistant: Hi Alice! How are you settling in?",
                   "Alice: Pretty well. I live in Seattle, right by Green Lake.")
    later = events("Assistant: Welcome back Alice, what's new?",
                   "Alice: Big week. I signed a lease on a flat in Denver.",
                   ts=MAR_2 + 86_400 * 30, stream="s2")
    memories = derive(first + later)
    by_text = {m.content.split(" / ")[0]: m for m in memories.values()}
    new = by_text["Alice: Big week. I signed a lease on a flat in Denver."]
    assert (new.subject, new.attribute, new.value) == ("alice", "city", "denver")
    assert by_text["Alice: Pretty well. I live in Seattle, right by Green Lake."] \
        .superseded_by == new.id
    assert by_text["Assistant: Hi Alice! How are you settling in?"].superseded_by == new.id
    assert new.superseded_by is None


def test_natural_wording_of_a_change():
    from memorose_dagster.memory.statements import facts

    assert facts("Brian: So after all those applications, they hired me as a data analyst "
                 "at Northwind.") == {"job": "data analyst"}
    assert facts("Ines: Leo, the guy I'm seeing now, took me to the opera.") == \
        {"partner": "leo"}
    assert facts("Hugo: Started at Globex last Monday.") == {"job": "globex"}
    assert facts("Dev: I went fully vegan in March.") == {"diet": "vegan"}
    assert facts("Caroline: My friend said the pottery class was fun.") == {}


def test_now_questions_prefer_the_latest_value_and_history_questions_keep_it():
    old = candidate("Alice: I live in Seattle.", 1.0, superseded_by="x", created_at=1.0)
    raw = Candidate("e1", "L0", {"content": "Alice: I live in Seattle.", "timestamp": 1.0},
                    1.0, frozenset({"e1"}))
    old.sources = frozenset({"e1", "e0"})
    new = candidate("Alice: I signed a lease on a flat in Denver.", 0.5, created_at=2.0)
    assert rank([old, raw, new], "Where does Alice live now?", 3)[0].id == new.id
    old.score, raw.score, new.score = 1.0, 1.0, 0.5
    assert rank([old, raw, new], "Where did Alice live before?", 3)[0].id == old.id


def test_context_leaves_out_filler_and_superseded_values():
    from memorose_dagster.memory.context import pack_context

    def result(content, **extra):
        return {"layer": "L1", "content": content, "provenance": [], "time": "", **extra}

    results = [result("Alice: I live in Seattle.", superseded_by="m2"),
               result("Alice: See you there."), result("Alice: lol"),
               result("Alice: I signed a lease on a flat in Denver.")]
    text, used = pack_context(results, 200, query="Where does Alice live now?")
    assert [r["content"] for r in used] == ["Alice: I signed a lease on a flat in Denver."]
    _, before = pack_context(results, 200, query="Where did Alice live before?")
    assert "Alice: I live in Seattle." in [r["content"] for r in before]
    # A reaction whose reply travels with it, or a greeting: the reply has its own line.
    reactions = [result("Assistant: A yard, how nice. / Mona: Please come visit."),
                 result("Assistant: Hi Dev, how have you been? / Dev: I went fully vegan."),
                 result("Dev: I went fully vegan in March.", time="March 2024"),
                 result("Ruth: Glastonbury, finally!", time="June 2024")]
    _, used = pack_context(reactions, 200, query="What does Dev eat these days?")
    assert [r["content"] for r in used] == ["Dev: I went fully vegan in March.",
                                            "Ruth: Glastonbury, finally!"]



def test_a_raw_event_finds_its_first_memory():
    from memorose_dagster.memory.consolidate import first_memory_id

    evs = events("Alice: I live in Seattle, right by Green Lake.")
    (memory,) = derive(evs).values()
    assert memory.id == first_memory_id(evs[0]["event_id"])


def test_relative_dates_said_in_passing():
    from memorose_dagster.memory.timeparse import resolve

    sat_mar_9, sat_mar_2 = MAR_2 + 7 * 86_400, MAR_2
    assert resolve("i started there six weeks ago today", sat_mar_9).label() == "27 January 2024"
    assert resolve("my parents come on thursday", sat_mar_2).label() == "7 March 2024"
    assert resolve("we went hiking on thursday", sat_mar_2).label() == "29 February 2024"
    assert resolve("the day before yesterday i submitted it", sat_mar_2).label() == \
        "29 February 2024"
    assert resolve("i passed my test a fortnight ago", sat_mar_2).label() == "17 February 2024"
