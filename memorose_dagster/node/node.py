"""A Memorose node: the replicated log, its RocksDB store, and the indexes derived from it.

Writes go through ``submit``: one Raft command, acknowledged once committed, applied to this
node's RocksDB and indexed (so an acknowledged event is searchable at once). Reads are local.
The API talks to a node only through the methods here; the store, the Raft object and the
indexes behind them stay inside this package.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from memorose_dagster.errors import CommitTimeout, InvalidInput, NotFound, Unavailable
from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.log import keys
from memorose_dagster.log.replicated import ROLES, MemoryLog
from memorose_dagster.log.store import Store, StoreClosed
from memorose_dagster.models.embedding import Embedder
from memorose_dagster.models.provider import make_embedder
from memorose_dagster.node import commits, maintenance, membership
from memorose_dagster.node.access import AccessLog
from memorose_dagster.node.forgetter import Forgetter
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.node.members import MemberView
from memorose_dagster.node.memories import Memories
from memorose_dagster.node.retrieval import Retriever
from memorose_dagster.records import SYSTEM_TENANT, ApiKey, Event, pack, record_from_dict
from memorose_dagster.settings import Settings, secure_home

log = logging.getLogger("memorose.node")

__all__ = ["Node", "StoreClosed"]  # StoreClosed: a read met a store being replaced


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
        self.members = MemberView(self.log)
        self.members.start()
        self.access = AccessLog(self)  # retrieve hits, flushed through the log
        self.access.start()
        self.retriever = Retriever(self.store, self.indexer, self.embedder)
        self.memories = Memories(self.store, self.retriever)
        self._forgetter: Forgetter | None = None

    def submit(self, records: list[dict[str, Any]], wait_indexed: bool = True) -> int:
        """Commit ``records`` as one log command; returns its log index once applied here."""
        timeout = self.settings.commit_timeout
        payload = pack(records)
        index = commits.commit(
            self.log, lambda left: self.log.apply_batch(payload, sync=True, timeout=left),
            timeout, retry_ambiguous=commits.retry_safe(records))
        if wait_indexed and not self.indexer.wait_for(index, timeout):
            raise CommitTimeout(f"log index {index} committed but not yet indexed on this node")
        return index

    def ingest(self, events: list[Event]) -> int:
        return self.submit([event.to_dict() for event in events])

    def commit_derived(self, raw: list[dict[str, Any]]) -> int:
        """Pipeline: commit derived records (as JSON: vector values base64) as one command."""
        records = []
        for i, item in enumerate(raw):
            if item.get("kind") == "event":
                raise InvalidInput(f"records.{i}: events enter through /api/v1/events",
                                   field=f"records.{i}.kind")
            if item.get("kind") == ApiKey.kind:
                raise InvalidInput(f"records.{i}: keys are made through /api/v1/admin/keys",
                                   field=f"records.{i}.kind")
            try:
                if item.get("kind") == "vector" and isinstance(item.get("values"), str):
                    item = {**item, "values": base64.b64decode(item["values"], validate=True)}
                records.append(record_from_dict(item).to_dict())
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"records.{i}: {exc}", field=f"records.{i}") from exc
        return self.submit(records)

    def find_event(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        return self.store.get(keys.event(tenant, event_id))

    def get_event(self, tenant: str, event_id: str) -> dict[str, Any]:
        event = self.find_event(tenant, event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        return event

    def save_api_key(self, key: ApiKey) -> int:
        """Commit a key made (or revoked) at run time; applied here when this returns."""
        return self.submit([key.to_dict()])

    def api_key(self, key_id: str) -> dict[str, Any] | None:
        """A key made at run time, revoked or not, read from RocksDB at call time: a revoke is
        refused by the first request after this replica applied it (no cache to go stale)."""
        return self.store.get(keys.derived(ApiKey.kind, SYSTEM_TENANT, key_id))

    def api_keys(self) -> list[dict[str, Any]]:
        """Every key made at run time, revoked ones included, by key id."""
        return list(self.store.records(keys.derived_prefix(ApiKey.kind, SYSTEM_TENANT)))

    def has_api_keys(self) -> bool:
        """Whether any key was ever made at run time (a node with one is no longer open)."""
        prefix = keys.derived_prefix(ApiKey.kind, SYSTEM_TENANT)
        return next(self.store.iter_prefix(prefix), None) is not None

    def has_user(self, tenant: str, user_id: str) -> bool:
        return next(self.store.user_event_ids(tenant, user_id), None) is not None

    def require_user(self, tenant: str, user_id: str) -> None:
        if not self.has_user(tenant, user_id):
            raise NotFound(f"unknown user_id {user_id!r}: no events stored", field="user_id")

    def get_record(self, tenant: str, layer: str, rid: str) -> dict[str, Any] | None:
        """An event (L0), memory (L1) or insight (L2) as stored, or None."""
        return self.retriever.record(tenant, layer, rid)

    def retrieve(self, tenant: str, user_id: str, query: str, top_k: int,
                 stream_id: str | None = None, layers: list[str] | None = None,
                 explain: bool = False) -> list[dict[str, Any]]:
        return self.retriever.retrieve(tenant, user_id, query, top_k, stream_id, layers,
                                       explain)

    def record_access(self, tenant: str, results: list[dict[str, Any]]) -> None:
        """Count retrieve hits (flushed through the log in the background)."""
        self.access.record(tenant, results)

    def user_records(self, kind: str, tenant: str, user_id: str,
                     streams: set[str] | None = None) -> list[dict[str, Any]]:
        return self.store.derived_for_user(kind, tenant, user_id, streams)

    def graph(self, tenant: str, user_id: str) -> tuple[list[dict], list[dict]]:
        """A user's entities and relations."""
        return (self.store.derived_for_user("entity", tenant, user_id),
                self.store.derived_for_user("relation", tenant, user_id))

    @property
    def forgetter(self) -> Forgetter:
        if self._forgetter is None:  # the token key is derived once from the cluster secret
            self._forgetter = Forgetter(self)
        return self._forgetter

    @property
    def applied_index(self) -> int:
        return self.store.applied_index

    def read_log(self, after: int, limit: int, kinds: set[str] | None = None,
                 until: int | None = None) -> dict[str, Any]:
        """Pipeline: committed entries after a cursor, as JSON (bytes as base64)."""
        entries, scanned_to = self.store.scan_log(after, limit, kinds, until)
        return {"entries": [{"log_index": index, "records": [_jsonable(r) for r in records]}
                            for index, records in entries],
                "next_cursor": scanned_to, "applied_index": self.store.applied_index}

    def users(self) -> list[tuple[str, str]]:
        return self.store.users()

    def events_between(self, start_ms: int, end_ms: int, limit: int,
                       after: tuple[str, str] | None = None,
                       ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        return self.store.events_between(start_ms, end_ms, limit, after)

    def derivations(self, kind: str) -> dict[str, dict[str, int]]:
        return self.store.derivations(kind)

    def leader(self) -> str | None:
        return commits.leader_address(self.log)

    def status(self) -> dict[str, Any]:
        raft = commits.raft_status(self.log)
        members = self.members.members()
        leader = commits.leader_address(self.log)
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

    def read_barrier(self, timeout: float) -> int:
        return maintenance.read_barrier(self.log, self.store, self.indexer, timeout)

    def add_member(self, address: str) -> list[str]:
        return membership.add_member(self.log, address, self.settings.commit_timeout)

    def remove_member(self, address: str) -> list[str]:
        return membership.remove_member(self.log, address, self.settings.commit_timeout)

    def snapshot(self, timeout: float) -> dict[str, Any]:
        return maintenance.snapshot(self.log, timeout)

    def digest(self, timeout: float) -> dict[str, Any]:
        return {"node_id": self.settings.name,
                **maintenance.digest(self.log, self.store, timeout)}

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until this node knows a leader and has applied what the log had at start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.leader_node() is not None and self.log.isReady():
                return
            time.sleep(0.02)
        raise Unavailable(f"no Raft leader after {timeout:.0f}s")

    def close(self) -> None:
        self.access.stop()
        self.members.stop()
        self.log.wait_snapshot_written()
        self.log.destroy_synchronous()
        self.indexer.stop()
        self.indexer.fulltext.close()
        self.store.close()


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
            for k, v in record.items()}
