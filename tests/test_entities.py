"""Entities that are things: spaCy behind models/ner.py, and the graph and insights fed by it."""

from __future__ import annotations

import pytest

from memorose_dagster.ids import new_id
from memorose_dagster.memory.consolidate import consolidate, is_noise
from memorose_dagster.memory.context import pack_context
from memorose_dagster.memory.graph import build_graph, named
from memorose_dagster.memory.insights import derive_insights, topics
from memorose_dagster.models.ner import entity_extractor

MAY_8 = 1683554160.0


@pytest.fixture(scope="module")
def extract():
    return entity_extractor()


def memories(*turns):
    evs = [dict(event_id=new_id(), tenant="t", user_id="u", stream_id="s", content=c,
                timestamp=MAY_8 + 86_400 * i, content_type="text") for i, c in enumerate(turns)]
    return [m.to_dict() for m in consolidate(evs, {"s": evs}, [])]


@pytest.mark.parametrize("sentence", [
    "Happy to help, what kind of food do you like?", "Can you recommend a film for tonight?",
    "Of course, do you prefer something light?", "Any tips for jet lag?",
    "Please don't share your bank details.", "Noted, I'll remember that.",
    "Congratulations on the new place!", "Colder than I expected.",
    "Exciting times at work lately.", "Night, talk tomorrow."])
def test_a_word_that_opens_a_sentence_is_not_an_entity(extract, sentence):
    assert named(extract([sentence])[0]) == []


def test_dates_are_not_places_and_names_hold_together(extract):
    (found,) = extract(["I study at the University of Colorado and we moved to Denver in "
                        "November. My laptop is an old MacBook Air, I drive a Toyota Corolla "
                        "and The Lord of the Rings is my comfort film."])
    assert named(found) == [("University of Colorado", "organisation"), ("Denver", "place"),
                            ("MacBook Air", "organisation"), ("Toyota Corolla", "thing"),
                            ("Lord of the Rings", "thing")]
    assert ("laptop", "noun") in found and ("film", "noun") in found


def test_the_extractor_is_loaded_once_and_remembers_what_it_read(extract):
    assert entity_extractor() is extract
    first = extract(["Maria moved to Lisbon."])
    assert extract(["Maria moved to Lisbon."]) == first and first[0][0][0] == "Maria"


def test_the_graph_takes_its_entities_from_the_extractor(extract):
    mine = memories("Ruth: Happy to be back! Glastonbury was muddy but the best weekend.",
                    "Assistant: Of course. Congratulations on the job at Google, Ruth!")
    entities, _ = build_graph(mine, extract)
    by_name = {e.name: e.entity_type for e in entities}
    assert "Happy" not in by_name and "Congratulations" not in by_name
    assert by_name["Ruth"] == "person" and by_name["Google"] == "organisation"
    assert "Glastonbury" in by_name
    before, _ = build_graph(mine)  # the stored entities: capitalised runs
    assert "Happy" in {e.name for e in before}


def fake_extract(texts):
    """Entities and nouns by a table: the shape of models/ner.py without the model."""
    table = {"camping": ("camping", "noun"), "Roskilde": ("Roskilde", "place")}
    return [[table[w] for w in table if w in text] for text in texts]


def test_topics_are_things_a_person_would_name():
    turns = [f"Mel: Please, {what} camping {n} honestly with my cousins."
             for n, what in enumerate(("loved", "more", "Roskilde"))]
    mine = memories(*turns)
    heads = {i.content.split(":")[0] for i in derive_insights(mine)}
    assert "Mel on please" not in heads  # filler is no topic, even without an extractor
    with_nouns = {i.content.split(":")[0] for i in derive_insights(mine, fake_extract)}
    assert "Mel on camping" in with_nouns and "Mel on honestly" not in with_nouns
    assert set(topics(mine[0], {"mel"}, [], {"camp"}).values()) == {"camping"}


def test_filler_makes_no_memory_and_no_context_line():
    assert is_noise("Assistant: Of course.") and is_noise("Kim: lol yes")
    lol = {"layer": "L0", "content": "Kim: lol", "provenance": []}
    fact = {"layer": "L1", "content": "Kim: I need the window seat.", "provenance": [],
            "time": "1 May 2024"}
    text, used = pack_context([lol, fact], 200, query="seat")
    assert used == [fact] and "lol" not in text
