"""The local consolidator and insights on concrete cases (pure functions)."""

from __future__ import annotations

from datetime import date

from memorose_dagster.ids import new_id, stable_id
from memorose_dagster.memory.consolidate import consolidate, consolidation, is_noise, memories_for
from memorose_dagster.memory.graph import build_graph, expansion, neighbourhood, query_names
from memorose_dagster.memory.insights import derive_insights
from memorose_dagster.memory.rank import Candidate, rank
from memorose_dagster.memory.timeparse import query_range

MAY_8 = 1683554160.0  # 2023-05-08 13:56 UTC


def events(*contents, ts=MAY_8, stream="s"):
    return [dict(event_id=new_id(), tenant="t", user_id="u", stream_id=stream, content=c,
                 timestamp=ts + i, content_type="text") for i, c in enumerate(contents)]


def derive(evs, existing=()):
    return {m.id: m for m in consolidate(evs, {"s": evs}, list(existing))}


def test_noise_is_dropped_and_facts_are_kept():
    for noise in ("ok", "lol", "Hey!", "Thanks, you too!", "haha yeah"):
        assert is_noise(noise), noise
    for fact in ("I moved to Lisbon", "Allergic to peanuts", "My sister is a nurse"):
        assert not is_noise(fact), fact
    memories = derive(events("ok", "I adopted a dog called Biscuit", "lol"))
    assert [m.content for m in memories.values()] == ["I adopted a dog called Biscuit"]


def test_yesterday_becomes_an_absolute_date():
    (memory,) = derive(events("I went to the LGBTQ support group yesterday")).values()
    assert memory.time_label == "7 May 2023"
    assert memory.content.endswith("[7 May 2023]")
    assert memory.valid_from == 1683417600.0  # 2023-05-07 00:00 UTC


def test_a_moved_city_supersedes_the_old_one():
    evs = events("Ana: I live in Porto and love it", "Ben: Porto is lovely",
                 "Ana: Big news, I moved to Lisbon for work")
    memories = derive(evs)
    old = next(m for m in memories.values() if m.content.startswith("Ana: I live in Porto"))
    new = next(m for m in memories.values() if m.content.startswith("Ana: Big news"))
    assert old.superseded_by == new.id and new.superseded_by is None
    found = rank([Candidate(m.id, "L1", m.to_dict(), 1.0, frozenset(m.source_event_ids))
                  for m in (old, new)], "where does she live", 2)
    assert [c.id for c in found] == [new.id, old.id]  # history stays, below the new value


def test_the_same_value_does_not_supersede():
    memories = derive(events("I moved to Lisbon last year", "I live in Lisbon now"))
    assert all(m.superseded_by is None for m in memories.values())


def test_duplicates_merge_into_the_first_memory():
    evs = events("We adopted a rescue dog named Biscuit today",
                 "We adopted a rescue dog named Biscuit today!")
    memories = derive(evs)
    assert len(memories) == 1
    (memory,) = memories.values()
    assert memory.source_event_ids == sorted(e["event_id"] for e in evs)


def in_runs(runs, streams):
    """What runs over ``runs`` (lists of events) leave stored, each run seeing what the ones
    before it committed: changed memories written, merged-away ones retired."""
    stored: dict[str, dict] = {}
    for targets in runs:
        memories, absorbed = consolidation(targets, streams, list(stored.values()))
        stored.update((m.id, m.to_dict()) for m in memories)
        for rid in absorbed:
            del stored[rid]
    return stored


def test_duplicates_merge_into_the_first_memory_whatever_order_they_are_derived_in():
    """A run over newer events can go before one over older events (a fresh range ahead of a
    backlog's chunks): the duplicate derived first is merged into the earlier memory when that
    comes, and the chain of values ends as in log order."""
    said = [*events("Ana: I live in Porto and love it", stream="s0"),
            *events("Ana: Big news, I moved to Lisbon for work", ts=MAY_8 + 60, stream="s1"),
            *events("Ana: I live in Porto and love it", ts=MAY_8 + 120, stream="s2")]
    streams = {e["stream_id"]: [e] for e in said}
    in_order = in_runs([[e] for e in said], streams)
    assert len(in_order) == 2  # the restatement merged into the first memory
    for order in ((2, 0, 1), (0, 2, 1), (2, 1, 0)):
        assert in_runs([[said[i]] for i in order], streams) == in_order, order


def test_a_memory_derived_again_keeps_the_duplicates_merged_into_it():
    """A turn is derived again when its stream goes on (its reply has come): the later
    duplicates merged into its memory in an earlier run stay merged."""
    first, later = events("Ana: I live in Porto and love it", stream="s")[0], \
        events("Ana: I live in Porto and love it", ts=MAY_8 + 60, stream="t")[0]
    reply = events("Ana: We went to the beach on Sunday", ts=MAY_8 + 120, stream="s")[0]
    streams = {"s": [first, reply], "t": [later]}
    stored = in_runs([[first, later], [first, reply]], streams)
    merged = next(m for m in stored.values() if first["event_id"] in m["source_event_ids"])
    assert later["event_id"] in merged["source_event_ids"]
    assert stored == in_runs([[first, later, reply]], streams)


def test_rerun_gives_the_same_memories():
    evs = events("Caroline: I started a pottery class", "Melanie: That is great, what pottery?",
                 "Caroline: Bowls and mugs mostly, glazed blue")
    first = derive(evs)
    again = derive(evs, [m.to_dict() for m in first.values()])
    assert {k: v.to_dict() for k, v in again.items()} == \
        {k: v.to_dict() for k, v in first.items()}


def test_turns_keep_their_context_and_reply():
    evs = events("Caroline: I started a pottery class", "Melanie: Which studio is it at?",
                 "Caroline: The one on Main Street")
    memories = sorted(derive(evs).values(), key=lambda m: m.created_at)
    assert memories[0].source_event_ids == [evs[0]["event_id"], evs[1]["event_id"]]
    assert "Melanie: Which studio" in memories[0].content
    assert "Main Street" in memories[0].context


def test_insight_keeps_its_id_across_reruns():
    evs = events("Went bouldering with Sam at the climbing gym",
                 "Bouldering hurts my fingers a lot", "New bouldering shoes arrived today",
                 "Bouldering competition next spring")
    first = {i.topic: i for i in derive_insights([m.to_dict() for m in derive(evs).values()])}
    more = evs + events("Bouldering again with Ana", ts=MAY_8 + 100)
    again = {i.topic: i for i in derive_insights([m.to_dict() for m in derive(more).values()])}
    assert first["bouldering"].id == again["bouldering"].id
    assert len(again["bouldering"].member_ids) == len(first["bouldering"].member_ids) + 1


def test_insight_gathers_one_speakers_topic_across_sessions():
    turns = ["Mel: We went camping at the beach last summer. The kids loved it.",
             "Ana: Camping sounds fun, I have never camped.",
             "Mel: Loved it! We camped in the mountains too.",
             "Ana: Great pic, I am so happy for you",
             "Mel: Our forest camping trip was the best one. Good times!",
             "Mel: So happy and good, we had a good day"]
    evs = [e for i, t in enumerate(turns) for e in events(t, ts=MAY_8 + 86_400 * i)]
    by_head = {i.content.split(":")[0]: i for i in
               derive_insights([m.to_dict() for m in derive(evs).values()])}
    camping = by_head["Mel on camping"]  # camping, camped: one topic; Ana's turn is not Mel's
    assert camping.content == ("Mel on camping: We went camping at the beach last summer. "
                               "[1 June 2022 - 31 August 2022]; "
                               "We camped in the mountains too.; "
                               "Our forest camping trip was the best one.")
    assert "The kids loved it." in camping.context and "never camped" not in camping.context
    mel = [m for m in derive(evs).values() if m.content.startswith("Mel")]
    assert set(camping.member_ids) == {m.id for m in mel if "camp" in m.content}
    assert not any(head.endswith((" happy", " good")) for head in by_head)  # says no topic


def test_graph_expansion_seeds_from_specific_entities_only():
    assert {"maria", "new york", "dog"} <= set(
        query_names("Where did Maria's dog go in New York?"))
    rare = {"name": "Biscuit", "memory_ids": ["m1", "m2"]}
    everywhere = {"name": "Mel", "memory_ids": [f"m{i}" for i in range(3, 3 + 13)]}
    assert expansion([rare, everywhere], fanout=12) == {"m1", "m2"}
    plain, linked = (Candidate(i, "L1", {"content": "x", "importance": 0.5}, 1.0,
                               frozenset({i}), linked=i == "b") for i in ("a", "b"))
    assert [c.id for c in rank([plain, linked], "biscuit", 2)] == ["b", "a"]


def test_a_date_range_in_the_query_favours_what_falls_inside():
    assert query_range("What did I do on 7 May 2023?", MAY_8).start == date(2023, 5, 7)
    may = query_range("what happened in May 2023", MAY_8)
    assert (may.start, may.end) == (date(2023, 5, 1), date(2023, 5, 31))
    assert query_range("what did I eat last week", MAY_8).end == date(2023, 5, 7)
    assert query_range("how are you", MAY_8) is None
    april, in_may = (Candidate(i, "L1", {"content": "x", "importance": 0.5, "valid_from": ts},
                               1.0, frozenset({i})) for i, ts in (("a", MAY_8 - 30 * 86_400),
                                                                  ("b", MAY_8)))
    assert [c.id for c in rank([april, in_may], "hikes in May 2023", 2, now=MAY_8)] == ["b", "a"]
    assert [c.id for c in rank([april, in_may], "hikes in April 2023", 2, now=MAY_8)] == ["a", "b"]


def test_graph_types_entities_and_merges_short_names():
    evs = events("Melanie: Maria started a new job at Google", "Caroline: Thanks, Mel! Lisbon?",
                 "Melanie: I moved to Lisbon with Maria last spring", "Caroline: Mel, call Maria")
    entities, relations = build_graph([m.to_dict() for m in derive(evs).values()])
    by_name = {e.name: e for e in entities}
    assert {n: e.entity_type for n, e in by_name.items()} == {
        "Melanie": "person", "Caroline": "person", "Maria": "person",
        "Google": "organisation", "Lisbon": "place"}
    assert by_name["Melanie"].aliases == ["Mel"] and "Mel" not in by_name
    found, _ = neighbourhood([e.to_dict() for e in entities], [r.to_dict() for r in relations],
                             "mel", 0)
    assert [e["name"] for e in found] == ["Melanie"]


def test_a_turn_splits_into_atomic_statements():
    evs = events("Caroline: Wow! I went to the LGBTQ support group yesterday. It was powerful. "
                 "Also my sister Anna moved to Lisbon last week.",
                 "Melanie: Amazing, which part of Lisbon?")
    first, second = sorted((m for m in derive(evs).values() if m.content.startswith("Caroline")),
                           key=lambda m: m.id != stable_id("l1", evs[0]["event_id"], "0"))
    assert first.content == ("Caroline: Wow! I went to the LGBTQ support group yesterday. "
                             "It was powerful. [7 May 2023]")
    assert second.content.startswith("Caroline: Also my sister Anna moved to Lisbon last week. "
                                      "[1 May 2023 - 7 May 2023] / Melanie: Amazing")
    assert first.source_event_ids == [evs[0]["event_id"]]  # the reply answers the last one
    assert second.source_event_ids == [evs[0]["event_id"], evs[1]["event_id"]]
    assert "Anna moved to Lisbon" in first.context and "support group" in second.context
    assert "Anna" in second.entities and "Anna" not in first.entities


def test_a_turn_worked_out_once_still_gives_each_call_its_own_memories():
    """Statements are cached per turn: a second call (another reply, another context) gets the
    same statements in new memories, and changing one call's memories changes no other's."""
    event = {"event_id": "E1", "tenant": "t", "user_id": "u", "stream_id": "s",
             "timestamp": 1683554160.0,
             "content": "Ann: I moved to Lisbon last week. My new job at Acme starts Monday."}
    reply = {**event, "event_id": "E2", "content": "Bob: Congratulations on the new job!"}
    first = memories_for(event, "")
    first[0].keywords.append("changed")
    first[0].entities.append("Changed")
    again, with_reply = memories_for(event, ""), memories_for(event, "around", reply)
    assert len(first) == len(again) == 2
    assert "changed" not in again[0].keywords and "Changed" not in with_reply[0].entities
    assert [m.id for m in again] == [m.id for m in with_reply]
    assert with_reply[-1].content.startswith(again[-1].content + " / Bob: Congratulations")
    assert with_reply[-1].source_event_ids == ["E1", "E2"]
    assert again[0].valid_from != event["timestamp"]  # "last week" resolved
