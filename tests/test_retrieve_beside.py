"""A retrieve embeds its question while a worker looks up the entities it names and runs BM25:
both run at once, and the answer is the one the stages give one after another."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import make_settings
from test_current_value import derive, said

from memorose_dagster.models.embedding import LocalMiniLM
from memorose_dagster.node.node import Node
from memorose_dagster.node.retrieval import STAGES

DEADLINE = 20.0
MAY_1 = 1714557600.0  # 2024, 10:00 UTC


def ingest(node: Node, contents: list[str]) -> None:
    node.ingest(said("u", contents, MAY_1, "s"))


class Gated:
    """The test's embedder, whose question embedding waits until BM25 has run elsewhere."""

    def __init__(self, inner: LocalMiniLM):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.embedding, self.searching = threading.Event(), threading.Event()
        self.thread = ""
        self.armed = False  # the node's start embeds a question too (its model loads)

    def embed(self, texts: list[str]):
        return self.inner.embed(texts)

    def embed_queries(self, texts: list[str]):
        if not self.armed:
            return self.inner.embed_queries(texts)
        self.thread = threading.current_thread().name
        self.embedding.set()
        if not self.searching.wait(DEADLINE):
            raise AssertionError("BM25 did not run while the question was being embedded")
        return self.inner.embed_queries(texts)


def test_the_question_is_embedded_while_bm25_runs(tmp_path: Path, embedder: LocalMiniLM):
    gated = Gated(embedder)
    node = Node(make_settings(tmp_path / "node"), embedder=gated)
    try:
        node.wait_ready()
        ingest(node, ["Maya moved to Lisbon in May.", "Tom adopted a dog called Rex.",
                      "Maya started a pottery class."])
        search, searched_on = node.indexer.fulltext.search, []

        def gated_search(*args, **kwargs):
            searched_on.append(threading.current_thread().name)
            if not gated.embedding.wait(DEADLINE):
                raise AssertionError("the question was not embedded while BM25 ran")
            gated.searching.set()
            return search(*args, **kwargs)

        node.indexer.fulltext.search = gated_search
        gated.armed = True
        timings: dict[str, float] = {}
        results = node.retrieve("default", "u", "Where does Maya live?", 3, timings=timings)
        assert searched_on and searched_on[0] != gated.thread
        assert results[0]["content"] == "Maya moved to Lisbon in May."
        assert set(STAGES) <= timings.keys()
    finally:
        node.close()


def test_the_answer_is_the_one_the_stages_give_in_turn(node: Node):
    derive(node, said("u", [f"Note {i}: Maya {verb} {thing}." for i, (verb, thing) in enumerate(
        (v, t) for v in ("likes", "sold", "painted", "found")
        for t in ("a red bike", "the old piano", "a blue kite", "her garden"))], MAY_1, "s"))
    questions = ["What did Maya paint?", "Who sold the piano?", "What is blue?", "garden"]
    beside = [node.retrieve("default", "u", q, 5, explain=True) for q in questions]
    node.retriever.lexical_beside = False
    in_turn = [node.retrieve("default", "u", q, 5, explain=True) for q in questions]
    assert beside == in_turn
    assert {r["layer"] for results in beside for r in results} == {"L1"}  # memories derived
    assert any(r["why"]["graph"] for results in beside for r in results)


def test_an_error_on_the_lexical_side_reaches_the_caller(node: Node):
    ingest(node, ["Maya moved to Lisbon."])

    def broken(*_args, **_kwargs):
        raise RuntimeError("the full-text index is gone")

    node.indexer.fulltext.search = broken
    with pytest.raises(RuntimeError, match="full-text index is gone"):
        node.retrieve("default", "u", "Where is Maya?", 3)


class Held:
    """The test's embedder, whose question embedding of ``HOLD`` waits to be let go."""

    HOLD = "Where does Maya hold her class?"

    def __init__(self, inner: LocalMiniLM):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.holding, self.release = threading.Event(), threading.Event()

    def embed(self, texts: list[str]):
        return self.inner.embed(texts)

    def embed_queries(self, texts: list[str]):
        if texts == [self.HOLD]:
            self.holding.set()
            if not self.release.wait(DEADLINE):
                raise AssertionError("never let go")
        return self.inner.embed_queries(texts)


def test_beside_another_retrieve_the_stages_run_in_turn(tmp_path: Path, embedder: LocalMiniLM):
    held = Held(embedder)
    node = Node(make_settings(tmp_path / "node"), embedder=held)
    try:
        node.wait_ready()
        ingest(node, ["Maya moved to Lisbon in May.", "Maya started a pottery class."])
        search, searched_on = node.indexer.fulltext.search, {}

        def recorded(query, *args, **kwargs):
            searched_on[threading.current_thread().name] = query
            return search(query, *args, **kwargs)

        node.indexer.fulltext.search = recorded
        answers: dict[str, list] = {}
        first = threading.Thread(target=lambda: answers.setdefault(
            "first", node.retrieve("default", "u", Held.HOLD, 3)), name="first")
        first.start()
        assert held.holding.wait(DEADLINE)  # the first retrieve is embedding its question
        answers["second"] = node.retrieve("default", "u", "Where is Maya now?", 3)
        held.release.set()
        first.join(DEADLINE)
        asking = threading.current_thread().name
        assert asking in searched_on  # the second: BM25 on its own thread
        assert "first" not in searched_on and len(searched_on) == 2  # the first: on the worker
        assert answers["first"] and answers["second"]
    finally:
        held.release.set()
        node.close()
