"""The entity extractor's reading stored with each memory: written by ``l1_memories``, taken by
the graph and the insights only where it is current, and what they derive is the same as when
every memory is read again."""

from __future__ import annotations

from test_derivation_incremental import SESSIONS, ingest, run

from memorose_dagster.memory.consolidate import said_text
from memorose_dagster.memory.graph import build_graph
from memorose_dagster.memory.insights import derive_insights
from memorose_dagster.memory.readings import decode, encode, read, reading_key
from memorose_dagster.models.ner import entity_extractor


class Counting:
    """The real extractor under its own name, counting the texts it is asked to read."""

    def __init__(self):
        self.real = entity_extractor()
        self.name = self.real.name
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        self.texts += texts
        return self.real(texts)


def without_readings(memories: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in ("mentions", "mentions_by")}
            for m in memories]


def as_dicts(records) -> list[dict]:
    return sorted((r.to_dict() for r in records), key=lambda r: r["id"])


def derive_all(node) -> None:
    until = 0
    for session in range(len(SESSIONS)):
        after, until = until, ingest(node, session)
        run(node, after, until)


def test_every_memory_is_stored_with_the_extractors_reading_of_its_statement(node):
    derive_all(node)
    memories = node.user_records("l1", "default", "user_1")
    assert len(memories) >= 5
    extract = entity_extractor()
    for memory in memories:
        said = said_text(memory["content"])
        assert memory["mentions_by"] == reading_key(extract, said), memory["id"]
        assert decode(memory["mentions"]) == extract([said])[0], memory["id"]
    assert any(kind == "place" for m in memories for _, kind in decode(m["mentions"]))


def test_graph_and_insights_from_stored_readings_equal_those_read_again(node):
    derive_all(node)
    memories = node.user_records("l1", "default", "user_1")
    stored, fresh = Counting(), Counting()
    assert as_dicts(build_graph(memories, stored)[0]) == as_dicts(
        build_graph(without_readings(memories), fresh)[0])
    assert as_dicts(build_graph(memories, stored)[1]) == as_dicts(
        build_graph(without_readings(memories), fresh)[1])
    assert as_dicts(derive_insights(memories, stored)) == as_dicts(
        derive_insights(without_readings(memories), fresh))
    assert derive_insights(memories, stored), "camping and Sam recur across the sessions"
    assert stored.texts == [], "every reading was current: the extractor read nothing"
    assert fresh.texts, "without stored readings every memory is read"


def test_a_reading_of_another_text_or_by_another_extractor_is_read_again(node):
    derive_all(node)
    memories = node.user_records("l1", "default", "user_1")
    said = said_text(memories[0]["content"])
    changed = {**memories[0], "content": memories[0]["content"].replace(
        said, said + " Also Lisbon.", 1)}
    assert said_text(changed["content"]) == said + " Also Lisbon."
    other = {**memories[1], "mentions_by": "another-model" + memories[1]["mentions_by"][-9:]}
    counting = Counting()
    found = read([changed, other, *memories[2:]], counting)
    assert counting.texts == [said_text(changed["content"]), said_text(other["content"])]
    assert found[0] == entity_extractor()([said_text(changed["content"])])[0]
    assert ("Lisbon", "place") in found[0]
    unnamed = read(memories[:2], lambda texts: [[("X", "thing")] for _ in texts])
    assert unnamed == [[("X", "thing")], [("X", "thing")]], "a nameless extractor always reads"


def test_names_with_colons_survive_the_stored_form():
    found = [("Re: Zero", "thing"), ("Maria", "person"), ("camp", "noun")]
    assert decode(encode(found)) == found
