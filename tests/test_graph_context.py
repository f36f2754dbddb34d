"""The graph endpoint and context packing, over a pipeline run on real components."""

from __future__ import annotations

import httpx
import pytest
from test_pipeline import ingest, materialize

from memorose_dagster.memory import rank
from memorose_dagster.memory.context import pack_context, tokens
from memorose_dagster.memory.timeparse import resolve


@pytest.fixture
def derived_url(served_node):
    ingest(served_node.url)
    materialize(served_node.url)
    return served_node.url


def test_graph_around_an_entity(derived_url):
    whole = httpx.get(derived_url + "/api/v1/users/user_1/graph").json()
    names = {e["name"] for e in whole["entities"]}
    assert {"Lisbon", "Maria", "Biscuit", "Google"} <= names
    alone = httpx.get(derived_url + "/api/v1/users/user_1/graph",
                      params={"entity": "google", "hops": 0}).json()
    assert {e["name"] for e in alone["entities"]} == {"Google"} and alone["relations"] == []
    near = httpx.get(derived_url + "/api/v1/users/user_1/graph",
                     params={"entity": "Google", "hops": 1}).json()
    assert {e["name"] for e in near["entities"]} == {"Google", "Maria"}  # co-occur once
    assert {r["relation"] for r in near["relations"]} == {"co_occurs", "mentioned_in"}
    two = httpx.get(derived_url + "/api/v1/users/user_1/graph",
                    params={"entity": "Google", "hops": 2}).json()
    assert {"Lisbon", "Biscuit"} <= {e["name"] for e in two["entities"]}
    for relation in whole["relations"]:
        assert relation["source_event_ids"] and relation["weight"] >= 1.0
    light = httpx.get(derived_url + "/api/v1/users/user_1/graph",
                      params={"mentions": "false"}).json()
    assert light["entities"] == whole["entities"]
    assert light["relations"] == [r for r in whole["relations"]
                                  if r["relation"] != "mentioned_in"]
    assert any(r["relation"] == "mentioned_in" for r in whole["relations"])


def test_graph_errors(derived_url):
    unknown = httpx.get(derived_url + "/api/v1/users/user_1/graph", params={"entity": "Mars"})
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "entity"
    hops = httpx.get(derived_url + "/api/v1/users/user_1/graph", params={"hops": 9})
    assert hops.status_code == 400 and hops.json()["error"]["field"] == "hops"
    nobody = httpx.get(derived_url + "/api/v1/users/nobody/graph")
    assert nobody.status_code == 404


def test_context_fits_the_budget(derived_url):
    body = {"user_id": "user_1", "query": "Where does Maria live and work?", "max_tokens": 60}
    packed = httpx.post(derived_url + "/api/v1/context", json=body).json()
    assert 0 < packed["tokens"] <= 60
    assert packed["context"].startswith("Relevant memories:")
    assert all(m["provenance"] for m in packed["memories"])
    roomy = httpx.post(derived_url + "/api/v1/context", json={**body, "max_tokens": 2000}).json()
    assert len(roomy["memories"]) > len(packed["memories"])
    bad = httpx.post(derived_url + "/api/v1/context", json={**body, "max_tokens": 1})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "max_tokens"


def test_pack_skips_what_does_not_fit():
    results = [{"layer": "L1", "content": "x" * 400, "provenance": [], "time": "7 May 2023"},
               {"layer": "L1", "content": "short fact", "provenance": [], "time": ""}]
    text, used = pack_context(results, 50)
    assert used == [results[1]] and tokens(text) <= 50 and "short fact" in text


def test_relative_dates_resolve_against_the_event_time():
    said = 1683554160.0  # 2023-05-08 13:56 UTC
    assert resolve("I went to a support group yesterday", said).label() == "7 May 2023"
    assert resolve("painted that last year", said).label() == "2022"
    assert resolve("moving next month", said).label() == "June 2023"
    last_week = resolve("last week was hard", said)
    assert (str(last_week.start), str(last_week.end)) == ("2023-05-01", "2023-05-07")
    assert resolve("two days ago", said).label() == "6 May 2023"
    assert resolve("no time words here", said) is None


def test_retrieve_expands_from_the_entities_a_query_names(derived_url, served_node, monkeypatch):
    node = served_node.node
    memories = node.store.derived_for_user("l1", "default", "user_1")
    maria = {m["id"] for m in memories if "Maria" in m["entities"]}
    assert len(maria) == 3
    linked_to = node.retriever.linked_memories
    assert linked_to("default", "user_1", "what does maria's job involve?") == maria
    assert linked_to("default", "user_1", "what is the weather like?") == set()

    def scores():
        found = httpx.post(derived_url + "/api/v1/retrieve", json={
            "user_id": "user_1", "query": "what does maria's job involve?", "layers": ["L1"]})
        return {r["id"]: r["score"] for r in found.json()["results"]}

    linked, boost = scores(), rank.GRAPH_BOOST
    monkeypatch.setattr(rank, "GRAPH_BOOST", 1.0)
    plain = scores()
    assert boost > 1 and linked.keys() == plain.keys() and maria < linked.keys()
    for rid, score in linked.items():
        assert score == pytest.approx(plain[rid] * (boost if rid in maria else 1.0), rel=1e-4)


def test_an_insight_answers_a_question_spread_over_sessions(served_node):
    url = served_node.url
    sessions = {
        "s1": ["Mel: We went camping at the beach last weekend.", "Ana: Sounds lovely!",
               "Ana: My cat Luna knocked over a vase this morning."],
        "s2": ["Mel: The kids want to go camping in the mountains next.", "Ana: Fun!",
               "Ana: I finally finished my thesis draft on glaciers."],
        "s3": ["Mel: Our forest camping trip was rainy but great.", "Ana: Ha, classic.",
               "Ana: I signed up for a pottery class downtown."],
    }
    camping = {sid: ingest(url, contents=turns, stream=sid)[0] for sid, turns in sessions.items()}
    materialize(url)
    found = httpx.post(url + "/api/v1/retrieve", json={
        "user_id": "user_1", "query": "Where has Mel camped?", "top_k": 3}).json()["results"]
    (insight,) = [r for r in found if r["layer"] == "L2"]
    assert insight["content"].startswith("Mel on camping: ")
    assert all(place in insight["content"] for place in ("beach", "mountains", "forest"))
    assert set(camping.values()) <= {p["event_id"] for p in insight["provenance"]}
    members = [httpx.get(f"{url}/api/v1/memories/{m}").json() for m in insight["member_ids"]]
    assert len(members) == 3 and all(m["content"].startswith("Mel: ") for m in members)
