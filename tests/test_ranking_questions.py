"""What answers a question about a person who speaks in the history: the attribute it asks
about, what they said they like for a request for a suggestion, their name out of BM25."""

from __future__ import annotations

from memorose_dagster.memory.rank import Candidate, bm25_query, rank, without_speakers
from memorose_dagster.memory.statements import asked, expanded


def memory(rid, content, **fields):
    return Candidate(rid, "L1", {"content": content, "importance": 0.5, **fields}, 1.0,
                     frozenset({rid}))


def test_questions_name_the_attribute_they_ask_about():
    assert asked("Where does Alice live now?") == {"city"}
    assert asked("What does Brian do for work these days?") == {"job"}
    assert asked("Who is Ines with these days?") == {"partner"}
    assert asked("What does Jonas eat nowadays?") == {"diet"}
    assert asked("Which university does Kira attend now?") == {"school"}
    assert asked("How does Nils get to work these days?") == {"commute"}
    assert asked("Which festivals has Ruth been to?") == set()


def test_a_memory_stating_the_asked_attribute_ranks_above_small_talk():
    small_talk = Candidate("a", "L1", {"content": "Alice: Ticket to Ride mostly, my friends "
                                                  "get very competitive.", "importance": 0.5},
                           1.0, frozenset({"a"}))
    lease = Candidate("b", "L1", {"content": "Alice: I signed a lease on a flat in Denver",
                                  "importance": 0.5, "attribute": "city"}, 0.8, frozenset({"b"}))
    assert [c.id for c in rank([small_talk, lease], "Where does Alice live now?", 2)] \
        == ["b", "a"]
    assert lease.why["attribute"] > 1.0 and small_talk.why["attribute"] == 1.0


def test_the_speakers_name_leaves_the_bm25_query():
    assert without_speakers("Which festivals has Ruth been to?", {"ruth"}) \
        == "Which festivals has been to"
    assert without_speakers("What is Nora's job?", {"nora"}) == "What is job"
    assert without_speakers("What did Maria say?", {"ruth"}) == "What did Maria say"
    assert without_speakers("Ruth?", {"ruth"}) == "Ruth?"  # nothing else to look for


def test_an_attribute_question_keeps_the_name_and_gains_the_words_of_a_change():
    assert expanded("Where does Alice live now?").startswith("Where does Alice live now? ")
    assert "lease" in expanded("Where does Alice live now?").split()
    assert bm25_query("Where does Alice live now?", {"alice"}) \
        == expanded("Where does Alice live now?")
    assert bm25_query("Which festivals has Ruth been to?", {"ruth"}) \
        == "Which festivals has been to"


def test_what_they_like_answers_a_request_for_a_suggestion():
    chat = memory("a", "Dana: Anything quick, I don't have much time on weeknights.")
    diet = memory("b", "Dana: At home we only eat plant-based, so I made a lentil stew.")
    chat.score, diet.score = 1.0, 0.85
    question = "What should I cook when Dana's family comes for dinner?"
    assert [c.id for c in rank([chat, diet], question, 2)] == ["b", "a"]
    assert diet.why["preference"] > 1.0 and chat.why["preference"] == 1.0
    chat.score, diet.score = 1.0, 0.85
    assert [c.id for c in rank([chat, diet], "What did Dana make?", 2)] == ["a", "b"]


def test_a_preference_sharing_no_word_with_the_request_is_lifted_into_the_top_three():
    chat = [memory(f"c{i}", f"Lena: {text}") for i, text in enumerate((
        "Hi! Mostly planning my week, and maybe some recipes.",
        "Anything quick, I don't have much time on weeknights.",
        "Probably a quiet few days, some board games and long lunches.",
        "Ticket to Ride mostly, my friends get very competitive."))]
    peanuts = memory("p", "Lena: Peanuts put me in hospital once, so I read every label twice.")
    likes = [memory(f"l{i}", f"Lena: I love {thing}.") for i, thing in enumerate(
        ("jazz", "tennis", "Lisbon", "sushi"))]
    for c, score in zip(chat, (1.0, 0.9, 0.8, 0.7), strict=True):
        c.score = score
    peanuts.score = 0.2
    for i, c in enumerate(likes):
        c.score = 0.01 * (i + 1)
    found = [c.id for c in rank([*chat, peanuts, *likes],
                                "What snacks can I bring to the picnic with Lena?", 10)]
    assert "p" in found[:3]
    lifted = [c.id for c in [*chat, peanuts, *likes] if "preference_seed" in c.why]
    assert len(lifted) == 3 and "p" in lifted  # the best few, not every like she ever said
    for c, score in zip(chat, (1.0, 0.9, 0.8, 0.7), strict=True):
        c.score = score
    peanuts.score = 0.2
    plain = [c.id for c in rank([*chat, peanuts], "What did Lena say about her week?", 5)]
    assert plain.index("p") == 4  # not a request for a suggestion: ranked as it matched
