"""Hybrid retrieval on one node: BM25 and vector hits fused, the graph's memories joined, ranked,
and each result given its provenance back to the raw events."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from memorose_dagster.log import keys
from memorose_dagster.log.store import Store
from memorose_dagster.memory import graph, relevance, statements
from memorose_dagster.memory.consolidate import first_memory_id, speaker_of
from memorose_dagster.memory.rank import (
    GRAPH_SEED,
    PREFERENCE_POOL,
    Candidate,
    asks_for_suggestion,
    bm25_query,
    fuse,
    rank,
    wants_current,
)
from memorose_dagster.models.embedding import Embedder
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.records import KIND_OF_LAYER, record_id

PROVENANCE_FIELDS = ("event_id", "stream_id", "timestamp", "metadata")
# A retrieve's stages (``Laps``): the entities the question names (and the speakers among
# them) and BM25 on a worker, beside the question's embedding and the vector search; the
# handing over to and back from that worker (``lexical``), the candidates' records (with graph
# expansion and replacements), ranking, and the results with their sources.
STAGES = ("entities", "bm25", "embed", "vectors", "lexical", "records", "rank", "sources")
BESIDE = ("entities", "bm25")  # the stages on the worker
QUERY_CACHE = 2048  # query vectors kept: an agent asks the same thing again and again


class QueryVectors:
    """Query embeddings, least recently used out first: the model is the largest fixed cost of
    a retrieve (~2 ms with the quantized copy, ~4.5 without), and the same text always has the
    same vector."""

    def __init__(self, embedder: Embedder, size: int = QUERY_CACHE):
        # A quantized copy of the model where the embedder has one (models/quantize.py).
        self._embed = getattr(embedder, "embed_queries", embedder.embed)
        self._size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, query: str) -> np.ndarray:
        with self._lock:
            vector = self._cache.get(query)
            if vector is not None:
                self._cache.move_to_end(query)
                return vector
        vector = self._embed([query])[0]
        with self._lock:
            self._cache[query] = vector
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return vector
SPEAKER_PROBE = 5  # memories looked at to tell a speaker from someone spoken about
MAX_CHAIN_HOPS = 4  # a supersede chain followed this far to its current memory


class Laps:
    """Where a retrieve's time went, stage by stage, in milliseconds (the route sends them as a
    ``Server-Timing`` header): each ``lap`` closes the stage that ran since the one before."""

    def __init__(self, into: dict[str, float] | None):
        self._into = into
        self._last = time.perf_counter()

    def lap(self, stage: str, add: bool = False) -> None:
        """``add``: to what the stage took before (one that runs in two parts)."""
        if self._into is None:
            return
        now = time.perf_counter()
        self._into[stage] = (now - self._last) * 1000 + (self._into.get(stage, 0.0) if add
                                                           else 0.0)
        self._last = now

    def skip(self) -> None:
        """The time since the last lap goes to no stage."""
        self._last = time.perf_counter()


def _now(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` run here, as a finished future (its error raised by ``result``)."""
    done: Future = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - raised to the caller by result(), as a worker's
        done.set_exception(exc)
    return done


class Retriever:
    def __init__(self, store: Store, indexer: Indexer, embedder: Embedder):
        self._store = store
        self._indexer = indexer
        self._embedder = embedder
        self._query_vector = QueryVectors(embedder)
        # The lexical side of a retrieve (named entities, BM25) runs here while the asking
        # thread embeds the question, when no other retrieve is under way: onnxruntime runs
        # without the interpreter lock, so the two overlap on a second core. Beside other
        # retrieves there is no core to spare (2 clients: -7% questions/s).
        self._lexical = ThreadPoolExecutor(1, thread_name_prefix="retrieve-lexical")
        self.lexical_beside = True  # False: on the asking thread, before the embedding
        self._asking = 0  # retrieves under way: with another one, no core is left to share
        self._asking_lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """A retrieve is under way."""
        return self._asking > 0

    def close(self) -> None:
        """Stops the lexical workers, after the retrieves they hold."""
        self._lexical.shutdown(wait=True)

    def record(self, tenant: str, layer: str, rid: str) -> dict[str, Any] | None:
        return self._store.get(keys.target_key(tenant, KIND_OF_LAYER[layer], rid))

    def records(self, tenant: str, wanted: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """The records of (layer, id) pairs, in one multi-get of what the store's record cache
        lacks: shared, never to be changed."""
        return self._store.get_many([keys.target_key(tenant, KIND_OF_LAYER[layer], rid)
                                     for layer, rid in wanted])

    def provenance(self, tenant: str, event_ids: list[str]) -> list[dict[str, Any]]:
        """The source events still stored, with their metadata as sent."""
        return self.provenances(tenant, [event_ids])[0]

    def provenances(self, tenant: str, lists: list[list[str]]) -> list[list[dict[str, Any]]]:
        """``provenance`` of several lists of event ids, in one multi-get."""
        wanted = list(dict.fromkeys(e for ids in lists for e in ids))
        found = {}
        for event_id, event in zip(wanted, self._store.get_many(
                [keys.event(tenant, e) for e in wanted]), strict=True):
            if event is not None:
                found[event_id] = {k: event[k] for k in PROVENANCE_FIELDS}
        return [[found[e] for e in ids if e in found] for ids in lists]

    def retrieve(self, tenant: str, user_id: str, query: str, top_k: int,
                 stream_id: str | None = None, layers: list[str] | None = None,
                 explain: bool = False, timings: dict[str, float] | None = None,
                 ) -> list[dict[str, Any]]:
        """The best ``top_k`` records for ``query``; with ``explain``, each result carries a
        ``why``: the BM25 and vector signals, graph expansion, the fused score and the factors
        the ranking applied to it (``score`` = ``fused`` x the factors). ``timings``, when
        given, gets the milliseconds of each stage (``STAGES``)."""
        with self._asking_lock:
            self._asking += 1
            alone = self._asking == 1
        try:
            return self._retrieve(tenant, user_id, query, top_k, stream_id, layers, explain,
                                  timings, beside=alone and self.lexical_beside)
        finally:
            with self._asking_lock:
                self._asking -= 1

    def _retrieve(self, tenant: str, user_id: str, query: str, top_k: int,
                  stream_id: str | None, layers: list[str] | None, explain: bool,
                  timings: dict[str, float] | None, beside: bool) -> list[dict[str, Any]]:
        """``retrieve``; ``beside``: its lexical side on a worker."""
        laps = Laps(timings)
        pool = max(3 * top_k, 30)
        lexical_side = (self._lexical_side, tenant, user_id, query, pool, stream_id, layers,
                        timings)
        lexical = None
        if beside:
            with contextlib.suppress(RuntimeError):  # stopped workers (a closing node): in turn
                lexical = self._lexical.submit(*lexical_side)
        if lexical is None:
            lexical = _now(*lexical_side)
            laps.skip()  # its stages were timed as they ran
        laps.lap("lexical")
        query_vector = self._query_vector(query)
        laps.lap("embed")
        vector_pool = max(pool, PREFERENCE_POOL) if asks_for_suggestion(query) else pool
        vector_hits = self._indexer.vectors.search(query_vector, tenant, user_id, vector_pool,
                                                   stream_id, layers)
        laps.lap("vectors")
        named, speakers, text_hits = lexical.result()
        laps.lap("lexical", add=True)  # and what was left to wait for, mostly nothing
        layer_of = {h.id: h.layer for h in text_hits} | {h.id: h.layer for h in vector_hits}
        fused = fuse(((h.id, h.score) for h in text_hits),
                     ((h.id, h.similarity) for h in vector_hits))
        linked = graph.expansion(named) if layers is None or "L1" in layers else set()
        # Graph expansion: memories of the entities the query names join the candidates even
        # when neither index found them, seeded at a fraction of the best match.
        expanded = linked - layer_of.keys()
        seed = GRAPH_SEED * (fused[0][1] if fused else 1.0)
        fused += [(rid, seed) for rid in sorted(expanded)]
        layer_of |= {rid: "L1" for rid in expanded}
        candidates = []
        found = self.records(tenant, [(layer_of[rid], rid) for rid, _ in fused])
        firsts = self._first_memories(tenant, [(rid, record) for (rid, _), record
                                               in zip(fused, found, strict=True)
                                               if record is not None and layer_of[rid] == "L0"])
        for (rid, score), record in zip(fused, found, strict=True):
            if record is None:  # forgotten after the index was read
                continue
            if rid in expanded and stream_id is not None and record.get("stream_id") != stream_id:
                continue
            if layer_of[rid] == "L0":
                record = self._as_derived(record, firsts.get(rid))
            sources = [rid] if layer_of[rid] == "L0" else record["source_event_ids"]
            candidates.append(Candidate(rid, layer_of[rid], record, score, frozenset(sources),
                                        linked=rid in linked))
        if wants_current(query) and (layers is None or "L1" in layers):
            candidates += self._replacements(tenant, candidates, stream_id)
        laps.lap("records")
        fused_scores = {c.id: c.score for c in candidates}
        cosine = {h.id: h.similarity for h in vector_hits}
        speakers |= {speaker_of(c.record.get("content", ""), "").lower() for c in candidates}
        ranked = rank(candidates, query, top_k + 1)  # one more: the margin below the best
        wanted = relevance.terms(query, speakers)
        signals = relevance.features(
            [c.score for c in ranked], [cosine.get(c.id, 0.0) for c in ranked],
            [relevance.coverage(wanted, c.record.get("content", "")) for c in ranked])[:top_k]
        ranked = ranked[:top_k]
        laps.lap("rank")
        sources = self.provenances(tenant, [[c.record["event_id"]] if c.layer == "L0"
                                            else c.record["source_event_ids"] for c in ranked])
        results = [self._result(c.layer, c.record, c.score, provenance)
                   for c, provenance in zip(ranked, sources, strict=True)]
        for result, signal in zip(results, signals, strict=True):
            result["relevance"] = round(relevance.relevance(*signal), 4)
        if explain:
            text_part = dict(fuse(((h.id, h.score) for h in text_hits), ()))
            vector_part = dict(fuse((), ((h.id, h.similarity) for h in vector_hits)))
            bm25 = {h.id: h.score for h in text_hits}
            for result, c, signal in zip(results, ranked, signals, strict=True):
                graph_role = "expanded" if c.id in expanded else "linked" if c.linked else None
                result["why"] = {
                    "bm25": bm25.get(c.id), "text": text_part.get(c.id, 0.0),
                    "vector": cosine.get(c.id), "vector_part": vector_part.get(c.id, 0.0),
                    "graph": graph_role, "fused": fused_scores[c.id],
                    "factors": c.why, "score": c.score,
                    "relevance": dict(zip(("coverage", "cosine", "share", "margin"), signal,
                                          strict=True))}
        laps.lap("sources")
        return results

    def _lexical_side(self, tenant: str, user_id: str, query: str, pool: int,
                      stream_id: str | None, layers: list[str] | None,
                      timings: dict[str, float] | None,
                      ) -> tuple[list[dict[str, Any]], set[str], list[Any]]:
        """The entities ``query`` names, the speakers among them, and its BM25 hits; each
        stage's milliseconds into ``timings``."""
        laps = Laps(timings)
        named = self.named_entities(tenant, user_id, query)
        speakers = set() if statements.asked(query) else self.speakers(tenant, named)
        laps.lap("entities")
        text_hits = self._indexer.fulltext.search(bm25_query(query, speakers), tenant, user_id,
                                                  pool, stream_id, layers)
        laps.lap("bm25")
        return named, speakers, text_hits

    def _replacements(self, tenant: str, candidates: list[Candidate],
                      stream_id: str | None) -> list[Candidate]:
        """On a question about now ("is Maya still in Austin?"), the memories that replaced the
        superseded ones found (the end of each chain, a few hops at most), each at the score of
        the best memory it replaced: the new value answers what the old one matched."""
        have = {c.id: c for c in candidates}
        heads: dict[str, float] = {}
        for c in candidates:
            if c.layer == "L1" and c.record.get("superseded_by"):
                rid = c.record["superseded_by"]
                heads[rid] = max(heads.get(rid, 0.0), c.score)
        added: list[Candidate] = []
        for _ in range(MAX_CHAIN_HOPS):
            for rid, score in heads.items():
                if rid in have and not have[rid].record.get("superseded_by"):
                    have[rid].score = max(have[rid].score, score)  # found already: lifted
            heads = {rid: score for rid, score in heads.items() if rid not in have}
            if not heads:
                break
            found = self.records(tenant, [("L1", rid) for rid in heads])
            later: dict[str, float] = {}
            for (rid, score), record in zip(heads.items(), found, strict=True):
                if record is None or (stream_id is not None
                                      and record.get("stream_id") != stream_id):
                    continue
                if record.get("superseded_by"):
                    later[record["superseded_by"]] = score
                    continue
                added.append(Candidate(rid, "L1", record, score,
                                       frozenset(record["source_event_ids"])))
                have[rid] = added[-1]
            heads = later
        return added

    def _first_memories(self, tenant: str, events: list[tuple[str, dict[str, Any]]],
                        ) -> dict[str, dict[str, Any]]:
        """Event id -> the L1 memory of its first statement, where there is one."""
        found = self.records(tenant, [("L1", first_memory_id(rid)) for rid, _ in events])
        return {rid: first for (rid, _), first in zip(events, found, strict=True)
                if first is not None}

    @staticmethod
    def _as_derived(event: dict[str, Any], first: dict[str, Any] | None) -> dict[str, Any]:
        """A raw event whose first memory was superseded says the same old thing."""
        if first is not None and first.get("superseded_by"):
            return {**event, "superseded_by": first["superseded_by"]}
        return event

    def named_entities(self, tenant: str, user_id: str, query: str) -> list[dict[str, Any]]:
        """The graph's entities that the query names (any 1-3 word run of it)."""
        wanted = [keys.derived("entity", tenant, graph.entity_id(user_id, name))
                  for name in graph.query_names(query)]
        return [entity for entity in self._store.get_many(wanted) if entity is not None]

    def speakers(self, tenant: str, named: list[dict[str, Any]]) -> set[str]:
        """The named entities that are people speaking in the history: their name opens turns
        ("Alice: ..."), seen in the first few memories they are linked to."""
        probes = [(entity["name"].lower(), memory_id) for entity in named
                  for memory_id in entity.get("memory_ids", [])[:SPEAKER_PROBE]]
        memories = self.records(tenant, [("L1", memory_id) for _, memory_id in probes])
        return {name for (name, _), memory in zip(probes, memories, strict=True)
                if memory and speaker_of(memory["content"], "").lower() == name}

    def linked_memories(self, tenant: str, user_id: str, query: str) -> set[str]:
        """L1 memories linked in the graph to the specific entities the query names."""
        return graph.expansion(self.named_entities(tenant, user_id, query))

    @staticmethod
    def _result(layer: str, record: dict[str, Any], score: float,
                provenance: list[dict[str, Any]]) -> dict[str, Any]:
        result = {"id": record_id(record), "layer": layer, "content": record["content"],
                  "score": round(score, 6), "user_id": record["user_id"],
                  "stream_id": record.get("stream_id"), "provenance": provenance}
        if layer == "L0":
            result["timestamp"] = record["timestamp"]
        else:
            result["importance"] = record.get("importance")
            if record.get("superseded_by"):
                result["superseded_by"] = record["superseded_by"]
            if record.get("time_label"):
                result["time"] = record["time_label"]
            if layer == "L2":
                result["member_ids"] = record["member_ids"]  # the L1 memories it quotes
        return result
