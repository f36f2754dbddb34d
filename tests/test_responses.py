"""JSON answers (``api/responses.py``): the values the json module would write, compact UTF-8,
and null for a non-finite float instead of a failed answer. A retrieve's answer says where its
time went in a Server-Timing header."""

from __future__ import annotations

import json
import math

from api.responses import JSONResponse
from memorose_dagster.node.retrieval import BESIDE, STAGES


def test_an_answer_reads_back_as_the_values_it_was_given():
    content = {"results": [{"id": "l1_é", "score": 3.2e-05, "relevance": 0.1 + 0.2,
                            "superseded_by": None, "member_ids": ("a", "b"), "n": 10**20,
                            "text": "Maya \u2028 said \"hi\" \\ 😀"}], "took_ms": 9.5}
    body = JSONResponse(content).body
    assert json.loads(body) == json.loads(json.dumps(content))
    assert b'"id":"l1_\xc3\xa9"' in body and b": " not in body  # raw UTF-8, compact


def test_a_non_finite_float_is_written_as_null():
    body = JSONResponse({"a": math.nan, "b": [math.inf, -math.inf], "c": 1.0}).body
    assert json.loads(body) == {"a": None, "b": [None, None], "c": 1.0}


def ask_about_maya(client):
    sent = client.post("/api/v1/events", json={"user_id": "u", "stream_id": "s",
                                               "content": "Maya moved to Lisbon."})
    assert sent.status_code == 201, sent.text
    return client.post("/api/v1/retrieve", json={"user_id": "u", "query": "Where is Maya?"})


def test_a_retrieve_answer_is_json(client):
    answer = ask_about_maya(client)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json()["results"][0]["content"] == "Maya moved to Lisbon."


def test_a_retrieve_says_where_its_time_went(client):
    answer = ask_about_maya(client)
    timing = dict(part.split(";dur=") for part in answer.headers["server-timing"].split(", "))
    assert list(timing) == [*STAGES, "total"]
    stages = {name: float(ms) for name, ms in timing.items()}
    assert all(ms >= 0 for ms in stages.values()) and stages["embed"] > 0
    assert float(timing["total"]) == answer.json()["took_ms"]
    # The stages lie within: those of the asking thread one after another, and BM25 with the
    # entities before it on a worker beside the embedding.
    assert sum(stages[s] for s in STAGES if s not in BESIDE) <= stages["total"] + 0.05
    assert sum(stages[s] for s in BESIDE) <= stages["total"] + 0.05
