"""What is true now, through a real node and pipeline: a question naming the old value ("is Maya
still in Austin?") is answered by the memory that replaced it, and a request for a suggestion
finds the preference the person stated in other words, among everyday chat."""

from __future__ import annotations

import dagster as dg
from test_pipeline_in_process import MEMORY_ASSETS, TODAY

from memorose_dagster.ids import new_id
from memorose_dagster.pipeline.in_process import InProcessClusterResource
from memorose_dagster.pipeline.resources import ModelResource
from memorose_dagster.records import Event

JAN_27, JUL_13 = 1706349600.0, 1720868400.0  # 2024, 10:00 / 11:00 UTC
CHAT = ["Hi! Mostly planning my week, and maybe some recipes.",
        "Anything quick, I don't have much time on weeknights.",
        "Probably a quiet few days, some board games and long lunches.",
        "Ticket to Ride mostly, my friends get very competitive.",
        "Good, thanks. The weather is grey and windy, typical December."]


def said(user, lines, start, stream):
    return [Event(event_id=new_id(), tenant="default", user_id=user,
                  stream_id=stream, content=line, timestamp=start + 60 * i)
            for i, line in enumerate(lines)]


def derive(node, events):
    node.ingest(events)
    resources = {"cluster": InProcessClusterResource.for_node(node), "model": ModelResource()}
    assert dg.materialize(MEMORY_ASSETS, resources=resources, partition_key=TODAY).success


def test_a_question_naming_the_old_value_finds_the_new_one(node):
    chat = said("maya", [f"Maya: {c}" for c in CHAT], JAN_27 - 86_400 * 60, "bg")
    before = said("maya", ["Assistant: Hi Maya! How's Austin treating you?",
                           "Maya: I'm living in Austin and it's already hot in January, ha.",
                           "Assistant: Texas weather is something else."], JAN_27, "s1")
    after = said("maya", ["Maya: I relocated to Portland in June for my partner's job.",
                          "Assistant: Portland summers are lovely.", "Maya: Perfect."],
                 JUL_13, "s2")
    derive(node, chat + before + after)
    found = node.retrieve("default", "maya", "Is Maya still in Austin?", 5)
    assert "Portland" in found[0]["content"]
    austin = [r for r in found if "living in Austin" in r["content"].split(" / ")[0]]
    assert austin and all(r["superseded_by"] for r in austin)  # history stays reachable
    history = node.retrieve("default", "maya", "Where did Maya live before?", 5)
    assert any("Austin" in r["content"] for r in history)


def test_a_request_for_a_suggestion_finds_the_preference_said_in_other_words(node):
    chat = said("lena", [f"Lena: {c}" for c in CHAT], JAN_27 - 86_400 * 60, "bg")
    peanuts = said("lena", ["Lena: Peanuts put me in hospital once, so I read every label twice.",
                            "Assistant: That sounds scary, good that you're careful.",
                            "Lena: Thanks."], JAN_27, "s1")
    derive(node, chat + peanuts)
    found = node.retrieve("default", "lena", "What snacks can I bring to the picnic with Lena?", 3)
    assert any("Peanuts" in r["content"] for r in found)
