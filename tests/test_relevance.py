"""A score an agent can act on: relevance in 0..1 and min_relevance on retrieve and context."""

from __future__ import annotations

from memorose_dagster.memory import relevance
from memorose_dagster.memory.context import pack_context


def test_coverage_counts_the_questions_words_but_not_the_speakers_name():
    wanted = relevance.terms("Which festivals has Ruth been to?", {"ruth"})
    assert wanted == {"festival"}
    assert relevance.coverage(wanted, "Ruth: The festival was muddy") == 1.0
    assert relevance.coverage(wanted, "Ruth: Ticket to Ride mostly") == 0.0


def test_relevance_is_a_probability_that_grows_with_each_signal():
    low = relevance.relevance(0.0, 0.1, 1.0, 0.0)
    assert 0.0 < low < 0.5
    assert relevance.relevance(1.0, 0.1, 1.0, 0.0) > low
    assert relevance.relevance(0.0, 0.7, 1.0, 0.0) > low
    assert relevance.relevance(0.0, 0.1, 1.0, 0.5) > low
    first, second = relevance.features([2.0, 1.0], [0.5, -0.2], [1.0, 0.0])
    assert first == (1.0, 0.5, 1.0, 0.5) and second == (0.0, 0.0, 0.5, 0.5)


def test_min_relevance_keeps_low_results_out_of_context():
    sure = {"layer": "L1", "content": "Ana: I moved to Lisbon", "provenance": [],
            "time": "7 May 2023", "relevance": 0.8}
    unsure = {**sure, "content": "Ana: The bakery is closed on Sundays", "relevance": 0.1}
    _, used = pack_context([sure, unsure], 500, query="where does Ana live")
    assert used == [sure, unsure]
    _, used = pack_context([sure, unsure], 500, query="where does Ana live", min_relevance=0.5)
    assert used == [sure]


def test_retrieve_and_context_drop_what_is_below_min_relevance(client):
    for content in ("Ana: I moved to Lisbon last spring", "Ana: Lisbon trams are lovely"):
        client.post("/api/v1/events", json={"user_id": "ana", "stream_id": "s",
                                            "content": content}).raise_for_status()
    body = {"user_id": "ana", "query": "Where does Ana live?"}
    results = client.post("/api/v1/retrieve", json=body).json()["results"]
    assert len(results) == 2 and all(0.0 < r["relevance"] < 1.0 for r in results)
    cut = min(r["relevance"] for r in results) + 1e-4
    kept = client.post("/api/v1/retrieve", json={**body, "min_relevance": cut}).json()
    assert [r["id"] for r in kept["results"]] == [r["id"] for r in results
                                                  if r["relevance"] >= cut]
    none = client.post("/api/v1/context", json={**body, "min_relevance": 1.0}).json()
    assert none["context"] == "" and none["memories"] == []
    bad = client.post("/api/v1/retrieve", json={**body, "min_relevance": 1.5})
    assert bad.status_code == 400
