"""Embedding beside the derivation: batches side by side on one thread each give the same vectors
as one batch at a time, and a run's lots come back whole, in order, with any failure raised."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from assets.selection import EmbedBeside
from memorose_dagster.models.embedding import LocalMiniLM
from memorose_dagster.records import record_id

TEXTS = [f"{i}: " + " ".join(["I moved to Lisbon with Maria and we adopted a dog"] * (i % 7 + 1))
         for i in range(150)]


class Recording:
    """The real model, noting each call's size and thread."""

    def __init__(self, inner: LocalMiniLM, fail_on: str | None = None):
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[tuple[int, str]] = []
        self.fail_on = fail_on

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append((len(texts), threading.current_thread().name))
        if self.fail_on in texts:
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        return self.inner.embed(texts)


def records(n: int, start: int = 0) -> list[dict]:
    return [{"kind": "l1", "tenant": "t", "id": f"m{i:04d}", "content": TEXTS[i % len(TEXTS)]}
            for i in range(start, start + n)]


def embedding_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("embed_")}


def test_batches_side_by_side_give_the_vectors_of_one_batch_at_a_time():
    pooled, serial = LocalMiniLM(threads=2), LocalMiniLM(threads=1)
    before = embedding_threads()
    b = serial.embed(TEXTS)
    assert embedding_threads() == before, "one thread: no pool"
    a = pooled.embed(TEXTS)
    assert len(embedding_threads() - before) == 2, "two threads: two lanes side by side"
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    # in the texts' order, whatever order the batches finish in
    np.testing.assert_allclose(pooled.embed(TEXTS[7:8]), a[7:8], atol=1e-5)


def test_lots_are_embedded_on_a_worker_and_come_back_in_order(embedder: LocalMiniLM):
    recording = Recording(embedder)
    with EmbedBeside(recording, lot=64) as beside:
        beside.add(records(40))
        assert recording.calls == [], "fewer than a lot wait"
        beside.add(records(40, 40))  # 80 waiting: one lot of 64 goes, 16 wait
        beside.add(records(100, 80))  # 116 waiting: one lot of 64, then one of 52 at the end
        vectors = beside.vectors()
    assert sorted(size for size, _ in recording.calls) == [52, 64, 64]
    assert all(name.startswith("embed-beside") for _, name in recording.calls)
    assert [v.record_id for v in vectors] == [record_id(r) for r in records(180)]
    expected = embedder.embed([r["content"] for r in records(180)])
    got = np.stack([np.frombuffer(v.values, dtype="<f4") for v in vectors])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_lot_that_fails_raises_where_the_vectors_are_asked_for(embedder: LocalMiniLM):
    recording = Recording(embedder, fail_on=TEXTS[3])
    with EmbedBeside(recording, lot=8) as beside:
        beside.add(records(16))
        with pytest.raises(RuntimeError, match="cannot embed"):
            beside.vectors()


def test_nothing_to_embed_is_no_lot(embedder: LocalMiniLM):
    recording = Recording(embedder)
    with EmbedBeside(recording) as beside:
        beside.add([])
        assert beside.vectors() == []
    assert recording.calls == []
