"""A Memorose node: the replicated log, its RocksDB store, and the indexes derived from it.

Writes go through ``submit``: one Raft command, acknowledged once committed, applied to this
node's RocksDB and indexed (so an acknowledged event is searchable at once). Reads are local.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pysyncobj.syncobj import _RAFT_STATE

from memorose_dagster import cluster
from memorose_dagster.access import AccessLog
from memorose_dagster.cluster import ClusterView
from memorose_dagster.errors import CommitTimeout, NotFound, Unavailable
from memorose_dagster.index.embedding import Embedder
from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.indexer import Indexer, record_id
from memorose_dagster.llm.provider import make_embedder
from memorose_dagster.log import keys
from memorose_dagster.log.replicated import MemoryLog
from memorose_dagster.log.store import Store
from memorose_dagster.memory import graph
from memorose_dagster.memory.rank import GRAPH_SEED, Candidate, fuse, rank
from memorose_dagster.records import Event, pack
from memorose_dagster.settings import Settings, secure_home

log = logging.getLogger("memorose.node")

ROLES = {_RAFT_STATE.FOLLOWER: "follower", _RAFT_STATE.CANDIDATE: "candidate",
         _RAFT_STATE.LEADER: "leader"}
KIND_OF_LAYER = {"L0": "event", "L1": "l1", "L2": "l2"}


class Node:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        home = settings.home
        secure_home(home)  # before anything is written under it
        secret = settings.resolved_secret()  # a weak one is refused before anything starts
        self.embedder = embedder or make_embedder()
        self.embedder.embed(["warm-up"])  # load the model now, not in the first request
        self.store = Store(home / "rocksdb")
        self.indexer = Indexer(self.store, FullTextIndex(home / "tantivy"),
                               VectorIndex(home / "lancedb", self.embedder.dim,
                                           self.embedder.name),
                               home / "indexed.watermark")
        self.indexer.start()
        # After a snapshot install the indexer goes on from its watermark: the new store holds
        # the log's per-index key lists, so catching up is exact (and no full rebuild).
        self.log = MemoryLog(settings.raft_address, list(settings.peers), self.store,
                             home / "raft", secret,
                             bind_address=settings.raft_bind_address,
                             max_frame_bytes=settings.raft_max_frame_bytes,
                             on_applied=lambda index, _records: self.indexer.notify(index),
                             on_snapshot_installed=lambda: self.indexer.notify(
                                 self.store.applied_index),
                             extra_status=lambda: {
                                 "node_id": settings.name,
                                 "url": f"http://{settings.host}:{settings.port}",
                                 "applied_index": self.store.applied_index,
                                 "indexed_index": self.indexer.indexed})
        self.cluster = ClusterView(self.log)
        self.cluster.start()
        self.access = AccessLog(self)  # retrieve hits, flushed through the log
        self.access.start()

    # -- writes --------------------------------------------------------------------------------

    def submit(self, records: list[dict[str, Any]], wait_indexed: bool = True) -> int:
        """Commit ``records`` as one log command; returns its log index once applied here."""
        timeout = self.settings.commit_timeout
        payload = pack(records)
        index = cluster.commit(
            self.log, lambda left: self.log.apply_batch(payload, sync=True, timeout=left),
            timeout, retry_ambiguous=cluster.retry_safe(records))
        if wait_indexed and not self.indexer.wait_for(index, timeout):
            raise CommitTimeout(f"log index {index} committed but not yet indexed on this node")
        return index

    def ingest(self, events: list[Event]) -> int:
        return self.submit([event.to_dict() for event in events])

    # -- reads ---------------------------------------------------------------------------------

    def get_event(self, tenant: str, event_id: str) -> dict[str, Any]:
        event = self.store.get(keys.event(tenant, event_id))
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        return event

    def has_user(self, tenant: str, user_id: str) -> bool:
        return next(self.store.user_event_ids(tenant, user_id), None) is not None

    def require_user(self, tenant: str, user_id: str) -> None:
        if not self.has_user(tenant, user_id):
            raise NotFound(f"unknown user_id {user_id!r}: no events stored", field="user_id")

    def get_record(self, tenant: str, layer: str, rid: str) -> dict[str, Any] | None:
        return self.store.get(keys.target_key(tenant, KIND_OF_LAYER[layer], rid))

    def retrieve(self, tenant: str, user_id: str, query: str, top_k: int,
                 stream_id: str | None = None, layers: list[str] | None = None,
                 ) -> list[dict[str, Any]]:
        pool = max(3 * top_k, 30)
        text_hits = self.indexer.fulltext.search(query, tenant, user_id, pool, stream_id, layers)
        query_vector = self.embedder.embed([query])[0]
        vector_hits = self.indexer.vectors.search(query_vector, tenant, user_id, pool,
                                                  stream_id, layers)
        layer_of = {h.id: h.layer for h in text_hits} | {h.id: h.layer for h in vector_hits}
        fused = fuse(((h.id, h.score) for h in text_hits),
                     ((h.id, h.similarity) for h in vector_hits))
        linked = self.linked_memories(tenant, user_id, query) \
            if layers is None or "L1" in layers else set()
        # Graph expansion: memories of the entities the query names join the candidates even
        # when neither index found them, seeded at a fraction of the best match.
        expanded = linked - layer_of.keys()
        seed = GRAPH_SEED * (fused[0][1] if fused else 1.0)
        fused += [(rid, seed) for rid in sorted(expanded)]
        layer_of |= {rid: "L1" for rid in expanded}
        candidates = []
        for rid, score in fused:
            record = self.get_record(tenant, layer_of[rid], rid)
            if record is None:  # forgotten after the index was read
                continue
            if rid in expanded and stream_id is not None and record.get("stream_id") != stream_id:
                continue
            sources = [rid] if layer_of[rid] == "L0" else record["source_event_ids"]
            candidates.append(Candidate(rid, layer_of[rid], record, score, frozenset(sources),
                                        linked=rid in linked))
        return [self._result(tenant, c.layer, c.record, c.score)
                for c in rank(candidates, query, top_k)]

    def linked_memories(self, tenant: str, user_id: str, query: str) -> set[str]:
        """L1 memories linked in the graph to the specific entities the query names."""
        named = [self.store.get(keys.derived("entity", tenant,
                                             graph.entity_id(tenant, user_id, name)))
                 for name in graph.query_names(query)]
        return graph.expansion([e for e in named if e is not None])

    def _result(self, tenant: str, layer: str, record: dict[str, Any],
                score: float) -> dict[str, Any]:
        source_ids = [record["event_id"]] if layer == "L0" else record["source_event_ids"]
        provenance = []
        for event_id in source_ids:
            event = self.store.get(keys.event(tenant, event_id))
            if event is not None:
                provenance.append({k: event[k] for k in
                                   ("event_id", "stream_id", "timestamp", "metadata")})
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

    # -- cluster -------------------------------------------------------------------------------

    def leader(self) -> str | None:
        leader = self.log._getLeader()
        return leader.address if leader is not None else None

    def is_leader(self) -> bool:
        return self.log._isLeader()

    def status(self) -> dict[str, Any]:
        raft = cluster.raft_status(self.log)
        members = self.cluster.members()
        leader = cluster.leader_address(self.log)
        return {
            "node_id": self.settings.name,
            "raft_address": self.settings.raft_address,
            "role": ROLES.get(raft["state"], str(raft["state"])),
            "leader": leader,
            "leader_url": next((m.get("url") for m in members if m["raft_address"] == leader),
                               None),
            "term": raft["raft_term"],
            "commit_index": raft["commit_idx"],
            "leader_commit_index": raft["leader_commit_idx"],
            "raft_applied_index": raft["last_applied"],
            "applied_index": self.store.applied_index,
            "indexed_index": self.indexer.indexed,
            "has_quorum": raft["has_quorum"],
            "log_len": raft["log_len"],
            "peers": [m["raft_address"] for m in members[1:]],
            "members": members,
        }

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until this node knows a leader and has applied what the log had at start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.leader() is not None and self.log.isReady():
                return
            time.sleep(0.02)
        raise Unavailable(f"no Raft leader after {timeout:.0f}s")

    def close(self) -> None:
        self.access.stop()
        self.cluster.stop()
        self.log.wait_snapshot_written()
        self.log.destroy_synchronous()
        self.indexer.stop()
        self.indexer.fulltext.close()
        self.store.close()
