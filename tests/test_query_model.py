"""Questions are embedded by a quantized copy of the shipped model (models/quantize.py): built from
the installed file into a cache, rebuilt when damaged, and its vectors land where the shipped
model's do, so memories embedded by the shipped model are found the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from memorose_dagster.models.embedding import LocalMiniLM

DOCUMENTS = [
    "Maya: I started a new job as a nurse at the children's hospital in Denver.",
    "Tom: We adopted a beagle puppy last weekend, his name is Biscuit.",
    "Priya: I'm training for the Boston marathon in April, running 40 miles a week.",
    "Leo: My sister just moved to Lisbon for a design job.",
    "Ana: I finally finished reading The Lord of the Rings, it took me all winter.",
    "Sam: lol ok",
]
QUESTIONS = [
    ("What does Maya do for work these days?", 0),
    ("What kind of dog did Tom get?", 1),
    ("Which race is Priya preparing for?", 2),
    ("Where did Leo's sister move?", 3),
    ("What book did Ana finish?", 4),
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "models"
    monkeypatch.setenv("MEMOROSE_MODEL_CACHE", str(path))
    monkeypatch.delenv("MEMOROSE_QUERY_MODEL", raising=False)
    return path


def test_questions_use_a_cached_quantized_copy_close_to_the_shipped_model(cache: Path):
    model = LocalMiniLM()
    documents = model.embed(DOCUMENTS)
    questions = [q for q, _ in QUESTIONS]
    quantized = model.embed_queries(questions)
    built = list(cache.glob("*.onnx"))
    assert [p.name for p in built] == [model.query_model]
    assert "int8-per-channel" in model.query_model
    assert not list(cache.glob(".build-*")), "the build directory is removed"

    exact = model.embed(questions)
    cosines = (exact * quantized).sum(axis=1)
    assert cosines.min() > 0.97, cosines
    assert not np.allclose(exact, quantized), "the copy is a different model, not the same file"
    ranked = np.argsort(-(quantized @ documents.T), axis=1)[:, 0]
    assert ranked.tolist() == [answer for _, answer in QUESTIONS]

    mtime = built[0].stat().st_mtime_ns
    again = LocalMiniLM()
    np.testing.assert_allclose(again.embed_queries(questions), quantized, atol=1e-6)
    assert built[0].stat().st_mtime_ns == mtime, "a second process reuses the cached copy"


def test_a_damaged_cached_copy_is_built_again(cache: Path):
    first = LocalMiniLM()
    expected = first.embed_queries(["Where did Leo's sister move?"])
    copy = cache / first.query_model
    copy.write_bytes(b"not an onnx file")

    model = LocalMiniLM()
    vector = model.embed_queries(["Where did Leo's sister move?"])
    assert model.query_model == copy.name
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    assert copy.stat().st_size > 1_000_000


def test_an_unwritable_cache_falls_back_to_the_shipped_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("MEMOROSE_MODEL_CACHE", str(blocked / "models"))
    monkeypatch.delenv("MEMOROSE_QUERY_MODEL", raising=False)
    model = LocalMiniLM()
    with caplog.at_level(logging.WARNING):
        vector = model.embed_queries(["What kind of dog did Tom get?"])
    assert model.query_model == "document"
    assert "no quantized copy" in caplog.text
    np.testing.assert_array_equal(vector, model.embed(["What kind of dog did Tom get?"]))


def test_the_shipped_model_can_be_chosen_for_questions(cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEMOROSE_QUERY_MODEL", "document")
    model = LocalMiniLM()
    vector = model.embed_queries(["Which race is Priya preparing for?"])
    assert model.query_model == "document"
    assert not cache.exists(), "nothing is built when the copy is not wanted"
    np.testing.assert_array_equal(vector, model.embed(["Which race is Priya preparing for?"]))


def test_an_unknown_query_model_is_refused_by_name(cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEMOROSE_QUERY_MODEL", "fp16")
    with pytest.raises(ValueError, match="MEMOROSE_QUERY_MODEL must be quantized or document"):
        LocalMiniLM().embed_queries(["anything"])


class CountingQuestions(LocalMiniLM):
    """The real model, noting the questions it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.questions: list[str] = []

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.questions += texts
        return super().embed_queries(texts)


def test_a_node_builds_the_copy_at_start_and_embeds_questions_with_it(
        cache: Path, tmp_path: Path):
    from starlette.testclient import TestClient

    from api import create_app
    from memorose_dagster.node.node import Node
    from tests.conftest import make_settings

    model = CountingQuestions()
    node = Node(make_settings(tmp_path / "node"), embedder=model)
    try:
        node.wait_ready()
        assert [p.name for p in cache.glob("*.onnx")] == [model.query_model], \
            "built at start, not in the first retrieve"
        with TestClient(create_app(node=node)) as client:
            for text in DOCUMENTS:
                client.post("/api/v1/events", json={"user_id": "u", "stream_id": "s",
                                                    "content": text}).raise_for_status()
            answer = client.post("/api/v1/retrieve", json={
                "user_id": "u", "query": "Which race is Priya preparing for?"})
        assert answer.status_code == 200, answer.text
        assert "marathon" in answer.json()["results"][0]["content"]
        assert "Which race is Priya preparing for?" in model.questions
    finally:
        node.close()
