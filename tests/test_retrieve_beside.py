"""A retrieve embeds its question while a worker looks up the entities it names and runs BM25
(unless another retrieve is under way): both run at once, and the answer is the one the stages
give one after another."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
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


class Hooked:
    """The test's embedder: the real one, calling ``before`` ahead of a question's embedding
    once it is set (the node's start embeds a question too, as its model loads)."""

    def __init__(self, inner: LocalMiniLM):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.before: Callable[[list[str]], None] | None = None

    def embed(self, texts: list[str]):
        return self.inner.embed(texts)

    def embed_queries(self, texts: list[str]):
        if self.before is not None:
            self.before(texts)
        return self.inner.embed_queries(texts)


@pytest.fixture
def hooked(tmp_path: Path, embedder: LocalMiniLM) -> Iterator[tuple[Node, Hooked]]:
    hook = Hooked(embedder)
    node = Node(make_settings(tmp_path / "node"), embedder=hook)
    node.wait_ready()
    yield node, hook
    node.close()


def on_search(node: Node, before: Callable[[str], None]) -> None:
    """``before(query)`` on the searching thread ahead of each BM25 search."""
    search = node.indexer.fulltext.search

    def hooked_search(query, *args, **kwargs):
        before(query)
        return search(query, *args, **kwargs)

    node.indexer.fulltext.search = hooked_search


def test_the_question_is_embedded_while_bm25_runs(hooked):
    node, hook = hooked
    ingest(node, ["Maya moved to Lisbon in May.", "Tom adopted a dog called Rex.",
                  "Maya started a pottery class."])
    embedding, searching = threading.Event(), threading.Event()
    threads: dict[str, str] = {}

    def embed_waits(_texts):
        threads["embed"] = threading.current_thread().name
        embedding.set()
        if not searching.wait(DEADLINE):
            raise AssertionError("BM25 did not run while the question was being embedded")

    def search_waits(_query):
        threads["bm25"] = threading.current_thread().name
        if not embedding.wait(DEADLINE):
            raise AssertionError("the question was not embedded while BM25 ran")
        searching.set()

    hook.before = embed_waits
    on_search(node, search_waits)
    timings: dict[str, float] = {}
    results = node.retrieve("default", "u", "Where does Maya live?", 3, timings=timings)
    assert threads["embed"] != threads["bm25"]
    assert results[0]["content"] == "Maya moved to Lisbon in May."
    assert set(STAGES) <= timings.keys()


def test_beside_another_retrieve_the_stages_run_in_turn(hooked):
    node, hook = hooked
    ingest(node, ["Maya moved to Lisbon in May.", "Maya started a pottery class."])
    hold = "Where does Maya hold her class?"
    holding, release = threading.Event(), threading.Event()

    def held(texts):
        if texts == [hold]:
            holding.set()
            if not release.wait(DEADLINE):
                raise AssertionError("never let go")

    searched_on: dict[str, str] = {}
    hook.before = held
    on_search(node, lambda query: searched_on.__setitem__(threading.current_thread().name,
                                                          query))
    answers: dict[str, list] = {}
    first = threading.Thread(target=lambda: answers.setdefault(
        "first", node.retrieve("default", "u", hold, 3)), name="first")
    first.start()
    try:
        assert holding.wait(DEADLINE)  # the first retrieve is embedding its question
        answers["second"] = node.retrieve("default", "u", "Where is Maya now?", 3)
    finally:
        release.set()
        first.join(DEADLINE)
    assert threading.current_thread().name in searched_on  # the second: BM25 on its thread
    assert "first" not in searched_on and len(searched_on) == 2  # the first: on the worker
    assert answers["first"] and answers["second"]


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

    def broken(_query):
        raise RuntimeError("the full-text index is gone")

    on_search(node, broken)
    with pytest.raises(RuntimeError, match="full-text index is gone"):
        node.retrieve("default", "u", "Where is Maya?", 3)


def test_a_retrieve_after_the_workers_stopped_runs_in_turn(node: Node):
    ingest(node, ["Maya moved to Lisbon."])
    node.retriever.close()  # as a closing node does, before its store closes
    assert node.retrieve("default", "u", "Where is Maya?", 3)[0]["content"] == (
        "Maya moved to Lisbon.")
