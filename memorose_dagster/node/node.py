"""A Memorose node: the replicated log, its RocksDB store, and the indexes derived from it.

Writes go through ``submit``: one Raft command, acknowledged once committed, applied to this
node's RocksDB and indexed (so an acknowledged event is searchable at once). Reads are local.
The API talks to a node only through the methods here; the store, the Raft object and the
indexes behind them stay inside this package.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObjException

from memorose_dagster.errors import (
    CommitTimeout,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
)
from memorose_dagster.index.fulltext import FullTextIndex
from memorose_dagster.index.vectors import VectorIndex
from memorose_dagster.log import keys
from memorose_dagster.log.faults import FaultFile, FaultState
from memorose_dagster.log.replicated import ROLES, MemoryLog
from memorose_dagster.log.store import WARM_EVENTS, WARM_RECORDS, StoreClosed, Warmth
from memorose_dagster.log.validate import InvalidRecord, validate_record
from memorose_dagster.models.embedding import Embedder
from memorose_dagster.models.provider import make_embedder
from memorose_dagster.node import (
    census,
    commits,
    inventory,
    maintenance,
    membership,
    startup_checks,
)
from memorose_dagster.node.access import AccessLog
from memorose_dagster.node.candidates import Candidates
from memorose_dagster.node.forgetter import Forgetter
from memorose_dagster.node.health import StorageHealth
from memorose_dagster.node.indexer import Indexer
from memorose_dagster.node.leases import Leases
from memorose_dagster.node.members import MemberView
from memorose_dagster.node.memories import Memories
from memorose_dagster.node.retrieval import Retriever
from memorose_dagster.records import SYSTEM_TENANT, ApiKey, Event, event_record, pack
from memorose_dagster.settings import Settings, secure_home

log = logging.getLogger("memorose.node")

IN_FLIGHT_CHECK = 0.05  # seconds between looks at this node's storage while a write waits
WARM_SWITCH_INTERVAL = 0.0005  # seconds: the interpreter's switch interval while the warm-up runs

__all__ = ["Node", "StoreClosed"]  # StoreClosed: a read met a store being replaced


class Node:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        home = settings.home
        secure_home(home)  # before anything is written under it
        secret = settings.resolved_secret()  # a weak one is refused before anything starts
        self.embedder = embedder or make_embedder()
        self.embedder.embed(["warm-up"])  # load the model now, not in the first request
        if hasattr(self.embedder, "embed_queries"):  # and the copy that embeds questions
            self.embedder.embed_queries(["warm-up"])
        startup_checks.check_data_dir(home)
        # Test hook (MEMOROSE_FAULT_FILE); a relative path is taken inside the data directory.
        fault_file = FaultFile(home / settings.fault_file if settings.fault_file else None)
        self.store = startup_checks.open_store(home, fault_file)
        try:
            fulltext = FullTextIndex(home / "tantivy")
        except ValueError as exc:
            self.store.close()
            raise startup_checks.index_error(home / "tantivy", home, exc) from exc
        self.indexer = Indexer(self.store, fulltext,
                               VectorIndex(home / "lancedb", self.embedder.dim,
                                           self.embedder.name),
                               home / "indexed.watermark")
        self.indexer.start()
        faults = FaultState()
        self.storage = StorageHealth(home, settings.min_free_bytes, faults)
        # After a snapshot install the indexer goes on from its watermark: the new store holds
        # the log's per-index key lists, so catching up is exact (and no full rebuild).
        self.log = MemoryLog(settings.raft_address, list(settings.peers), self.store,
                             home / "raft", secret,
                             bind_address=settings.raft_bind_address,
                             max_frame_bytes=settings.raft_max_frame_bytes,
                             on_applied=self.indexer.applied,
                             on_snapshot_installed=lambda: self.indexer.notify(
                                 self.store.applied_index),
                             extra_status=lambda: {
                                 "node_id": settings.name,
                                 "url": f"http://{settings.host}:{settings.port}",
                                 "applied_index": self.store.applied_index,
                                 "indexed_index": self.indexer.indexed,
                                 **self.storage.report()},
                             faults=faults, fault_file=fault_file)
        self.members = MemberView(self.log)
        self.members.start()
        self.access = AccessLog(self)  # retrieve hits, flushed through the log
        self.access.start()
        self.retriever = Retriever(self.store, self.indexer, self.embedder)
        self.memories = Memories(self.store, self.retriever)
        self.candidates = Candidates(self.store)
        self.leases = Leases()  # which pipeline step derives which users now
        self._forgetter: Forgetter | None = None
        self._warm_stop = threading.Event()
        self.warmer: threading.Thread | None = None
        self.warmth: Warmth | None = None  # what the warm-up read, once it is done
        self.warm_users = 0  # and whose vectors it loaded
        # Set by the app serving this node: whether a request is under way (the warm-up gives
        # way to them).
        self.requests_under_way: Callable[[], bool] = lambda: False
        if settings.warm_store:
            self.warmer = threading.Thread(target=self._warm, name="memorose-warm", daemon=True)
            self.warmer.start()

    def submit(self, records: list[dict[str, Any]], wait_indexed: bool = True,
               label: str = "records") -> int:
        """Commit ``records`` as one log command; returns its log index once applied here.

        The state machine checks every record and decides resent event ids: a command it
        cannot apply is InvalidInput naming ``{label}.{i}.{field}``; an event id stored with
        another event makes the whole command a Conflict. Either way nothing of it is applied.
        """
        return self._submit(pack(records), commits.retry_safe(records),
                            lambda i: records[i]["event_id"], wait_indexed, label)

    def _submit(self, payload: bytes, retry_ambiguous: bool, event_id: Callable[[int], str],
                wait_indexed: bool, label: str) -> int:
        self.storage.check_writable()  # a full disk answers now, and nothing is proposed
        timeout = self.settings.commit_timeout
        outcome = commits.commit(self.log, lambda left: self._propose(payload, left), timeout,
                                 retry_ambiguous=retry_ambiguous)
        index = outcome["log_index"]
        if outcome["clashes"]:
            i = outcome["clashes"][0]
            raise Conflict(f"events.{i}.event_id: {event_id(i)} is already stored "
                           "with another user, stream, content or metadata",
                           field=f"events.{i}.event_id", log_index=index)
        if outcome["rejected"]:
            reason = outcome["rejected"].replace("records.", f"{label}.", 1)
            where = reason.partition(":")[0] if reason.startswith(f"{label}.") else label
            raise InvalidInput(reason, field=where, log_index=index)
        if wait_indexed and not self.indexer.wait_for(index, timeout):
            raise CommitTimeout(f"log index {index} committed but not yet indexed on this node")
        return index

    def _propose(self, payload: bytes, timeout: float) -> dict[str, Any]:
        """One ``apply_batch`` through the log, answered when applied here; fails at once when
        this node's storage fails meanwhile (pysyncobj would never call back: the entry waits
        in the log until the disk takes writes again)."""
        done, outcome = threading.Event(), {}

        def callback(result: object, error: int) -> None:
            outcome.update(result=result, error=error)
            done.set()

        self.log.apply_batch(payload, callback=callback)
        deadline = time.monotonic() + timeout
        while not done.wait(min(IN_FLIGHT_CHECK, max(deadline - time.monotonic(), 0))):
            if time.monotonic() >= deadline:
                raise SyncObjException("Timeout")
            self.storage.check_in_flight()
        if outcome["error"] != FAIL_REASON.SUCCESS:
            raise SyncObjException(outcome["error"])
        return outcome["result"]

    def ingest(self, events: list[Event]) -> int:
        return self.ingest_records([event_record(event) for event in events])

    def ingest_records(self, records: list[dict[str, Any]]) -> int:
        """Events as their log command carries them (``kind`` "event")."""
        return self.submit(records, label="events")

    def ingest_command(self, payload: bytes, event_ids: list[str]) -> int:
        """Events already packed as their log command (``api.batches``: read in an ingest
        worker); the state machine checks every record as it does any command's."""
        return self._submit(payload, True, event_ids.__getitem__, True, "events")

    def commit_derived(self, raw: list[dict[str, Any]]) -> int:
        """Pipeline: commit derived records (as JSON: vector values base64) as one command.
        Each is checked against its type before it is proposed: InvalidInput names
        ``records.{i}.{field}``."""
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
                records.append(validate_record(item))
            except InvalidRecord as exc:
                where = f"records.{i}.{exc.field}" if exc.field else f"records.{i}"
                raise InvalidInput(f"{where}: {exc.problem}", field=where) from exc
            except ValueError as exc:  # not base64
                raise InvalidInput(f"records.{i}.values: not base64",
                                   field=f"records.{i}.values") from exc
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
                 explain: bool = False, timings: dict[str, float] | None = None,
                 ) -> list[dict[str, Any]]:
        return self.retriever.retrieve(tenant, user_id, query, top_k, stream_id, layers,
                                       explain, timings)

    def record_access(self, tenant: str, results: list[dict[str, Any]]) -> None:
        """Count retrieve hits (flushed through the log in the background)."""
        self.access.record(tenant, results)

    def user_records(self, kind: str, tenant: str, user_id: str,
                     streams: set[str] | None = None) -> list[dict[str, Any]]:
        return self.store.derived_for_user(kind, tenant, user_id, streams)

    def l1_candidates(self, tenant: str, user_id: str, contents: list[str], ids: list[str],
                      event_ids: list[str]) -> list[dict[str, Any]]:
        """Pipeline: the user's L1 memories a consolidator run over new events can merge into,
        supersede or retire (``node/candidates.py``), instead of all of them."""
        return self.candidates.l1(tenant, user_id, contents, ids, event_ids)

    def graph(self, tenant: str, user_id: str,
              mentions: bool = True) -> tuple[list[dict], list[dict]]:
        """A user's entities and relations; without ``mentions``, no ``mentioned_in`` edges
        (each entity names its memories in ``memory_ids`` all the same)."""
        relations = self.store.derived_for_user("relation", tenant, user_id)
        if not mentions:
            relations = [r for r in relations if r.get("relation") != "mentioned_in"]
        return self.store.derived_for_user("entity", tenant, user_id), relations

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

    def log_counts(self, after: int, limit: int, kinds: set[str] | None = None,
                   until: int | None = None) -> dict[str, Any]:
        """Pipeline: per committed entry after a cursor, how many records of ``kinds`` it
        holds, read from the log alone (what cutting a backlog into runs needs)."""
        entries, scanned_to = self.store.count_log(after, limit, kinds, until)
        return {"entries": [list(entry) for entry in entries], "next_cursor": scanned_to,
                "applied_index": self.store.applied_index}

    def users(self) -> list[tuple[str, str]]:
        return self.store.users()

    def last_events(self, users: list[tuple[str, str]]) -> list[int | None]:
        """Pipeline: the log index of each user's last event (None if unknown)."""
        return self.store.last_events(users)

    def events_between(self, start_ms: int, end_ms: int, limit: int,
                       after: tuple[str, str] | None = None,
                       ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        return self.store.events_between(start_ms, end_ms, limit, after)

    def derivations(self, kind: str) -> dict[str, dict[str, int]]:
        return self.store.derivations(kind)

    def lake_records(self, kind: str, days: set[str] | None, tenant: str | None,
                     after: bytes | None, limit: int, with_values: bool = False,
                     ) -> tuple[list[dict[str, Any]], bytes | None]:
        """Lake and export: records of a kind, dated, in pages (see ``node/inventory.py``)."""
        return inventory.lake_page(self.store, kind, days, tenant, after, limit, with_values)

    def lake_touched(self, after: int, until: int | None, limit: int) -> dict[str, Any]:
        """Lake: the (tenant, day) partitions and (tenant, id)s the log entries in (after, until]
        wrote."""
        return inventory.touched(self.store, after, until, limit)

    def lake_rows(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
        """Lake: the current rows of every table with one of ``ids`` in ``tenant``, by key."""
        return inventory.rows_of(self.store, tenant, ids)

    def index_census(self, timeout: float = 10.0) -> dict[str, Any]:
        """Audits: per user and layer, RocksDB against Tantivy and LanceDB on this node, once
        the indexer caught up with what is applied (or ``timeout`` passed)."""
        caught_up = self.indexer.wait_for(self.store.applied_index, timeout)
        return {"node_id": self.settings.name, "applied_index": self.store.applied_index,
                "indexed_index": self.indexer.indexed, "caught_up": caught_up,
                **census.census(self.store, self.settings.home, self.indexer.vectors.model)}

    def leader(self) -> str | None:
        return commits.leader_address(self.log)

    def health(self) -> dict[str, Any]:
        """``status`` ok or degraded (with the reason), role, leader and ``caches``: for
        ``/health``."""
        leader = commits.leader_address(self.log)
        role = ROLES.get(commits.raft_status(self.log)["state"], "unknown")
        return {**self.storage.report(), "role": role, "leader": leader,
                "caches": self.caches()}

    def caches(self) -> str:
        """``warming`` while the start's warm-up reads what a retrieve reads (``_warm``), then
        ``warm``; ``cold`` if it was turned off or stopped (reads go to disk as they come)."""
        if self.warmer is None:
            return "cold"
        if self.warmth is None:
            return "warming" if self.warmer.is_alive() else "cold"
        return "cold" if self.warmth.stopped else "warm"

    def status(self) -> dict[str, Any]:
        raft = commits.raft_status(self.log)
        members = self.members.members()
        leader = commits.leader_address(self.log)
        return {
            **self.storage.report(),
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
            if self.storage.faulted():  # start degraded: serve reads, refuse writes
                return
            time.sleep(0.02)
        raise Unavailable(f"no Raft leader after {timeout:.0f}s")

    def _warm(self) -> None:
        """What a retrieve reads, brought into memory beside the node's start and its first
        requests (``Store.warm``): the memories, insights and entities into RocksDB's block
        cache and, decoded, into the record cache; then the vectors of the users who wrote
        last, until half of what the vector view holds (a user's first question read them from
        the table: ~100 ms from a cold disk at 5,000 rows); then the events, newest first.
        7-11 s at 100k events. A restarted node's questions then read memory, not a disk read
        and a decode a key; ``/health`` says ``warming`` until then. It gives way to the
        requests under way (``Store.warm``)."""
        started = time.monotonic()
        # A request that arrives mid-batch waits for the interpreter until the warm-up lets
        # go of it: after 0.5 ms meanwhile, not the default 5 (``WARM_SWITCH_INTERVAL``).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(WARM_SWITCH_INTERVAL)
        try:
            def give_way() -> bool:  # a question or another request under way
                return self.retriever.busy or self.requests_under_way()

            records = self.store.warm(WARM_RECORDS, stop=self._warm_stop, give_way=give_way)
            users = 0
            for tenant, user_id in self.store.recent_users():
                held, most = self.indexer.vectors.memory_rows
                if self._warm_stop.is_set() or held >= most // 2:
                    break
                users += self.indexer.vectors.load_user(tenant, user_id)
            events = self.store.warm(WARM_EVENTS, stop=self._warm_stop, give_way=give_way)
        except Exception as exc:  # a storage fault, a closing store: reads go to disk as before
            log.warning("warming the node's caches stopped: %s", exc)
            return
        finally:
            sys.setswitchinterval(switch_interval)
        self.warm_users = users
        self.warmth = warmth = Warmth(records.keys + events.keys, events.cache_bytes,
                                      records.full or events.full,
                                      records.stopped or events.stopped, events.records)
        log.info("warmed the caches in %.2f s: %d keys (%.0f MB of block cache%s; %d records "
                 "decoded, ~%.0f MB), the vectors of %d users (%d rows)",
                 time.monotonic() - started, warmth.keys, warmth.cache_bytes / 1e6,
                 ", its share full" if warmth.full else "", warmth.records,
                 self.store.record_cache.bytes / 1e6, users,
                 self.indexer.vectors.memory_rows[0])

    def close(self) -> None:
        self._warm_stop.set()
        if self.warmer is not None:
            self.warmer.join(timeout=10)
        self.access.stop()
        self.members.stop()
        self.retriever.close()
        self.log.wait_snapshot_written()
        self.log.destroy_synchronous()
        self.indexer.stop()
        try:
            self.indexer.fulltext.close()
        except ValueError as exc:  # its last commit, on a full disk: derived data, rebuilt
            log.warning("closing Tantivy: %s", exc)
        self.store.close()


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
            for k, v in record.items()}
