"""The RocksDB state every replica holds: records applied in Raft commit order.

``apply`` is the state machine's transition. It runs on every replica with the same input in the
same order, so it must be deterministic: no clock, no randomness, no network. It is idempotent by
log index: an entry at or below the applied watermark is skipped, which makes the journal replay
after a restart (pysyncobj re-applies entries after its last dump) a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Checkpoint,
    DbClosedError,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
)

from memorose_dagster.ids import id_floor, id_time_ms
from memorose_dagster.log import keys
from memorose_dagster.log.access_totals import apply_access
from memorose_dagster.log.faults import FaultFile, StorageFault
from memorose_dagster.log.record_cache import RecordCache, budget_from_env
from memorose_dagster.log.validate import check_command, decode_command
from memorose_dagster.records import (
    DERIVED_KINDS,
    FINAL_REASONS,
    KIND_OF_LAYER,
    SAME_EVENT,
    pack,
    unpack,
)

log = logging.getLogger("memorose.store")

StoreClosed = DbClosedError  # a read while a snapshot replaces the store, or after close
MAX_SCAN = 100_000  # log entries one read of the log looks at, at most
REOPEN_WAIT = 2.0  # seconds a reopen waits for readers of the failed database to let go
# A disk that was full is given this much room before RocksDB is reopened: until then the
# failed instance keeps serving reads (RocksDB only refuses writes in its error state).
REOPEN_MIN_FREE = 4 * 1024 * 1024
# Blocks of the store kept decoded in memory: the state machine reads its access totals and
# event ids, and retrieve its records, by point lookups all over the store (a 100k-event store
# is ~250 MB); RocksDB's default cache of 32 MB missed on most of them. Bloom filters answer a
# lookup of an absent key (a new event id, a first access total) without reading a block.
BLOCK_CACHE_BYTES = 256 * 1024 * 1024
_BLOCK_CACHE: Cache | None = None  # one per process, shared by every open of a store
KEEP_INFO_LOGS = 5  # RocksDB's LOG files kept (one more each open; its default keeps 1,000)
# What a retrieve reads, read once into the block cache as a node starts (``Store.warm``): its
# memories, insights, the entities a question names, and the events behind them, the newest
# first (event ids sort by time: a store larger than the warm-up's share keeps the recent
# ones). Not the vectors (two thirds of the store; searches use the vector index) nor the
# log's own entries. (prefix, newest first)
WARM_RECORDS = tuple((keys.derived_kind_prefix(kind), False) for kind in ("l1", "l2", "entity"))
WARM_EVENTS = ((keys.EVENTS_PREFIX, True),)
WARM_PREFIXES = WARM_RECORDS + WARM_EVENTS
WARM_SHARE = 0.5  # of the block cache, at most, filled by warming: it never evicts itself
WARM_READAHEAD = 2 * 1024 * 1024
_WARM_CHECK = 1024  # keys between two looks at the stop flag and the cache's usage
_WARM_BATCH = 128  # keys read into the record cache at once (~0.5-1 ms)
_GIVE_WAY_POLL = 0.002  # seconds between two looks while the warm-up gives way
_GIVE_WAY_MOST = 1.0  # seconds it waits at most, at one time: under steady load it creeps on
# Written into the record cache as they land (``KeyedBatch``): what a retrieve reads of the
# pipeline's output, as read (a derivation's new memories are found by the next questions); the
# events only while it has room (a bulk load must not push out what questions read).
CACHED_ON_WRITE = {"l1": "read", "l2": "read", "entity": "read", "event": "room"}


@dataclass(frozen=True, slots=True)
class Warmth:
    """What ``Store.warm`` read: keys, the block cache's bytes after it, whether it stopped at
    its share of the cache (``full``) or was stopped, and the records the record cache held
    after it."""

    keys: int
    cache_bytes: int
    full: bool
    stopped: bool
    records: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command did: the records as stored, or why it was skipped as a whole
    (``rejected``) and, for a resent event id holding another event, which records clashed;
    ``previous`` is the log index of the command applied before it (0: none), so that whoever
    follows the outcomes can tell whether it missed one."""

    records: list[dict[str, Any]]
    rejected: str = ""
    clashes: tuple[int, ...] = ()
    previous: int = 0


def ingest_day(event_id: str) -> str:
    """The UTC day inside an event id (its pipeline partition), or "" for an id without one."""
    try:
        return datetime.fromtimestamp(id_time_ms(event_id) / 1000, UTC).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


class _Reopening:
    """Stands in for the database while it is reopened: every read raises StoreClosed."""

    def __init__(self, old: Rdict):
        self._old: Rdict | None = old

    def close_old(self) -> None:
        if self._old is None:
            return
        try:
            self._old.close()
        except RuntimeError:  # a reader is still inside it ("Already borrowed"): next retry
            raise
        except Exception:  # close() re-raises the background error, but it did close
            log.debug("closing the failed RocksDB instance", exc_info=True)
        self._old = None

    def __getattr__(self, name: str) -> Any:
        raise DbClosedError("the store is being reopened after a storage fault")


def _options() -> Options:
    global _BLOCK_CACHE
    if _BLOCK_CACHE is None:  # a reopen or a read-only open shares it, not adds 256 MB more
        _BLOCK_CACHE = Cache(BLOCK_CACHE_BYTES)
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_keep_log_file_num(KEEP_INFO_LOGS)
    table = BlockBasedOptions()
    table.set_block_cache(_BLOCK_CACHE)
    table.set_bloom_filter(10, False)
    opts.set_block_based_table_factory(table)
    return opts


def _open(path: Path, access_type: AccessType | None = None) -> Rdict:
    """The store's RocksDB with these options. They are passed for the default column family
    too: given only the database's options, rocksdict reopens an existing database with the
    column family's options as its OPTIONS file saved them, and a table factory it makes anew
    (RocksDB's default 8 MB block cache, no bloom filter)."""
    opts = _options()
    if access_type is None:
        return Rdict(str(path), opts, column_families={"default": opts})
    return Rdict(str(path), opts, column_families={"default": opts}, access_type=access_type)


def _give_way(give_way: Callable[[], bool], stop: threading.Event | None) -> None:
    """Wait while ``give_way()`` holds (a request under way), up to ``_GIVE_WAY_MOST`` or
    until ``stop`` is set."""
    deadline = time.monotonic() + _GIVE_WAY_MOST
    while give_way() and time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return
        time.sleep(_GIVE_WAY_POLL)


class KeyedBatch:
    """A WriteBatch that names the keys it puts and deletes: they leave the record cache. Those
    put with ``cache`` go back into it with the value written once the write landed: ``read``
    (the memories, insights and entities a retrieve reads) as the most recently read, ``room``
    (events) only while the cache has room."""

    def __init__(self) -> None:
        self.batch = WriteBatch(raw_mode=True)
        self.keys: list[bytes] = []
        self.landed: dict[bytes, bytes] = {}  # key -> its value, as the batch leaves it
        self.room: dict[bytes, bytes] = {}

    def put(self, key: bytes, value: bytes, cache: str | None = None) -> None:
        self.batch.put(key, value)
        self.keys.append(key)
        self.landed.pop(key, None)
        self.room.pop(key, None)
        if cache == "read":
            self.landed[key] = value
        elif cache == "room":
            self.room[key] = value

    def delete(self, key: bytes) -> None:
        self.batch.delete(key)
        self.keys.append(key)
        self.landed.pop(key, None)
        self.room.pop(key, None)


class Store:
    def __init__(self, path: str | Path, fault_file: FaultFile | None = None,
                 record_cache: int | None = None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = _open(self.path)
        self.record_cache = RecordCache(budget_from_env() if record_cache is None
                                        else record_cache)  # bytes
        self._swap_lock = threading.Lock()
        self.scan_budget = MAX_SCAN
        self._fault_file = fault_file or FaultFile(None)
        # After a failed write RocksDB refuses every write ("background error") until the
        # database is reopened; rocksdict has no resume(). Set until the next successful write.
        self._failed: StorageFault | None = None
        self._known: dict[bytes, bytes | None] = {}  # this command's prefetched reads

    @property
    def applied_index(self) -> int:
        raw = self._db.get(keys.APPLIED)
        return int.from_bytes(raw, "big") if raw else 0

    def apply(self, command: Any, log_index: int) -> Outcome | None:
        """Apply one decoded command, atomically. None if this index was applied before
        (replay)."""
        self._recover()
        if log_index <= self.applied_index:
            return None
        return self._apply(log_index, *check_command(command))

    def apply_payload(self, payload: bytes, log_index: int) -> Outcome | None:
        """Apply one command as committed: msgpack bytes, which may not even decode."""
        self._recover()
        if log_index <= self.applied_index:
            return None
        return self._apply(log_index, *decode_command(payload))

    def _apply(self, log_index: int, records: list[dict[str, Any]], rejected: str,
               ) -> Outcome:
        # Never raises on what the command holds: a command no replica can apply (it does not
        # decode, a record does not fit its type, an event id holds another event) is skipped
        # as a whole, the same way everywhere, and the reason kept. Write errors propagate.
        batch = KeyedBatch()
        previous = self.applied_index
        self._known = self._prefetch(records)
        try:
            clashes = () if rejected else self._clashes(records)
            if clashes:
                rejected = f"records {list(clashes)}: event id already stored with another event"
            if rejected:
                outcome = Outcome([], rejected, clashes, previous)
                written: list[bytes] = []
                batch.put(keys.rejected(log_index), pack({"reason": rejected,
                                                          "clashes": list(clashes)}))
            else:
                written, applied = self._stage(batch, records, log_index)
                outcome = Outcome(applied, previous=previous)
        finally:
            self._known = {}
        batch.put(keys.seq(log_index), pack(written))
        batch.put(keys.APPLIED, log_index.to_bytes(8, "big"))
        self._write(batch)
        if rejected:
            log.warning("log index %d skipped: %s", log_index, rejected)
        return outcome

    def _stage(self, batch: KeyedBatch, records: list[dict[str, Any]], log_index: int,
               ) -> tuple[list[bytes], list[dict[str, Any]]]:
        """Put one valid command's records into ``batch``: the keys written and the records."""
        written: list[bytes] = []
        applied: list[dict[str, Any]] = []
        staged: dict[bytes, dict[str, Any]] = {}  # access totals written earlier in this batch
        talked: set[tuple[str, str]] = set()  # users with an event in this command
        for record in records:
            record = {**record, "log_index": log_index}
            if record["kind"] == "access":
                done = apply_access(batch, lambda k: staged.get(k) or self._decoded(k), record,
                                    lambda k: self._raw(k) is not None)
                if done is not None:
                    staged[done[0]] = done[1]
                    batch.put(keys.user_derived("access", record["tenant"], record["user_id"],
                                                record["record_id"]), b"")
                    written.append(done[0])
                    applied.append(done[1])
                continue
            if self._finally_forgotten(record) or self._stored_before(record):
                continue
            if record["kind"] == "tombstone":
                self._apply_tombstone(batch, record)
            elif record["kind"] == "event":
                # The listing's value names the event's stream: a read of some streams of
                # a user fetches only their events (older stores hold b"": read and filtered).
                batch.put(keys.user_event(record["tenant"], record["user_id"],
                                          record["event_id"]), record["stream_id"].encode())
                talked.add((record["tenant"], record["user_id"]))
            elif record["kind"] in DERIVED_KINDS:
                # The listing's value is the log index that wrote the record: its version, so a
                # reader caching what it made of a record sees a change without reading it.
                batch.put(keys.user_derived(record["kind"], record["tenant"], record["user_id"],
                                            record["id"]), keys.version(log_index))
            key = keys.record_key(record)
            batch.put(key, pack(record), cache=CACHED_ON_WRITE.get(record["kind"]))
            written.append(key)
            applied.append(record)
        for tenant, user_id in talked:
            batch.put(keys.user_last_event(tenant, user_id), keys.version(log_index))
        return written, applied

    def _prefetch(self, records: list[dict[str, Any]]) -> dict[bytes, bytes | None]:
        """What a command reads, in one multi-get: the stored event and event-tombstone keys of
        its events (deciding resends), and the target and running total of its access counts,
        instead of two or three reads per record."""
        wanted = []
        for r in records:
            if r.get("kind") == "event":
                wanted += [keys.event(r["tenant"], r["event_id"]),
                           keys.tombstone(r["tenant"], "event", r["event_id"])]
            elif r.get("kind") == "access":
                wanted += [keys.target_key(r["tenant"], r["target_kind"], r["record_id"]),
                           keys.access(r["tenant"], r["record_id"])]
        return dict(zip(wanted, self.get_raw_many(wanted), strict=True))

    def _raw(self, key: bytes) -> bytes | None:
        """A key's stored bytes, from the command's prefetch when it holds the key."""
        return self._known[key] if key in self._known else self._db.get(key)

    def _decoded(self, key: bytes) -> dict[str, Any] | None:
        raw = self._raw(key)
        return None if raw is None else unpack(raw)

    def _clashes(self, records: list[dict[str, Any]]) -> tuple[int, ...]:
        """Positions of events whose id is already stored (or earlier in this command) with
        another user, stream, content, type or metadata. A resend of the same event is fine."""
        seen: dict[bytes, dict[str, Any]] = {}
        clashes = []
        for i, record in enumerate(records):
            if record["kind"] != "event":
                continue
            key = keys.event(record["tenant"], record["event_id"])
            raw = None if key in seen else self._raw(key)
            stored = seen.get(key) or (None if raw is None else unpack(raw))
            if stored is not None and any(stored.get(k) != record[k] for k in SAME_EVENT):
                clashes.append(i)
            seen.setdefault(key, record)
        return tuple(clashes)

    def _write(self, batch: KeyedBatch) -> None:
        """The one write of the state machine: all of a command or nothing. A failure (disk full,
        I/O error) raises ``StorageFault``; the next call reopens the database first."""
        try:
            self._fault_file.check("rocksdb")
            self._db.write(batch.batch)
        except Exception as exc:  # rocksdict raises a bare Exception ("IO error: ...")
            self.record_cache.written(batch.keys)
            self._failed = StorageFault.of(exc, "rocksdb")
            raise self._failed from exc
        except BaseException:
            self.record_cache.written(batch.keys)
            raise
        self.record_cache.written(batch.keys, batch.landed, batch.room)
        self._failed = None

    def _recover(self) -> None:
        """After a failed write, reopen the database (RocksDB's way out of its error state)."""
        if self._failed is None:
            return
        try:
            self._fault_file.check("rocksdb")
            if self._failed.full:
                st = os.statvfs(self.path)
                if st.f_bavail * st.f_frsize < REOPEN_MIN_FREE:
                    raise self._failed
            self._reopen()
        except Exception as exc:
            raise StorageFault.of(exc, "rocksdb") from exc

    def probe(self) -> None:
        """A write that changes nothing visible: raises ``StorageFault`` while writes fail."""
        self._recover()
        batch = KeyedBatch()
        batch.delete(keys.PROBE)
        self._write(batch)

    def _reopen(self) -> None:
        # Readers see a closed store (StoreClosed: 503, try another node) while this runs: a
        # read inside the old instance's close() would fail with a RuntimeError instead. The
        # old instance's cleanup must not run over the new one's files (see _wait_released):
        # a reader holding on past REOPEN_WAIT fails this attempt, and the tick retries.
        with self._swap_lock:
            if not isinstance(self._db, _Reopening):
                self._db = _Reopening(self._db)
            self._db.close_old()
            try:
                self._wait_released(REOPEN_WAIT)
                self._db = _open(self.path)
            except Exception:
                self._open_read_only()
                raise
            log.info("RocksDB reopened after a storage fault")

    def _open_read_only(self) -> None:
        """Reads go on from a read-only instance (it writes nothing) until the next attempt."""
        try:
            self._db = _open(self.path, AccessType.read_only())
        except Exception as exc:  # reads answer StoreClosed (503) until the next attempt
            log.warning("RocksDB cannot be opened even to read: %s", exc)

    def _apply_tombstone(self, batch: KeyedBatch, record: dict[str, Any]) -> None:
        tenant, kind, target_id = record["tenant"], record["target_kind"], record["target_id"]
        target = self.get(keys.target_key(tenant, kind, target_id))
        if target is not None and kind == "event":
            batch.delete(keys.user_event(tenant, target["user_id"], target_id))
        elif target is not None and kind in DERIVED_KINDS:
            batch.delete(keys.user_derived(kind, tenant, target["user_id"], target_id))
            batch.delete(keys.user_derived("access", tenant, target["user_id"], target_id))
        batch.delete(keys.target_key(tenant, kind, target_id))
        batch.delete(keys.vector(tenant, target_id))
        batch.delete(keys.access(tenant, target_id))

    def _stored_before(self, record: dict[str, Any]) -> bool:
        """An event is written once: a resend of a client-chosen id (or a retried command)
        changes nothing, and an event forgotten since does not come back."""
        if record["kind"] != "event":
            return False
        tenant, event_id = record["tenant"], record["event_id"]
        return self._raw(keys.event(tenant, event_id)) is not None \
            or self._raw(keys.tombstone(tenant, "event", event_id)) is not None

    def _finally_forgotten(self, record: dict[str, Any]) -> bool:
        """An L1/L2 (or its vector) whose id was forgotten or decayed stays gone: a pipeline
        re-deriving it from an event that is still there must not bring it back."""
        kind = record["kind"]
        if kind == "vector":
            kind, rid = KIND_OF_LAYER.get(record["layer"], ""), record["record_id"]
        elif kind in ("l1", "l2"):
            rid = record["id"]
        else:
            return False
        if kind not in ("l1", "l2"):
            return False
        tombstone = self.get(keys.tombstone(record["tenant"], kind, rid))
        return tombstone is not None and tombstone.get("reason") in FINAL_REASONS


    def get(self, key: bytes) -> dict[str, Any] | None:
        raw = self._db.get(key)
        return None if raw is None else unpack(raw)

    def get_raw_many(self, wanted: list[bytes]) -> list[bytes | None]:
        """The stored bytes of each key (None where absent), in one multi-get."""
        return self._db.get(wanted) if wanted else []

    def get_many(self, wanted: list[bytes]) -> list[dict[str, Any] | None]:
        """The decoded record of each key (None where absent), through the record cache
        (``record_cache.py``): shared objects, read and never changed by the caller."""
        return self.record_cache.get_many(wanted, self.get_raw_many)

    def warm(self, prefixes: tuple[tuple[bytes, bool], ...] = WARM_PREFIXES,
             stop: threading.Event | None = None,
             give_way: Callable[[], bool] | None = None) -> Warmth:
        """Read every key under each of ``prefixes`` once (``(prefix, newest_first)``: in key
        order, or from the last key back), so their blocks sit in the block cache and, while
        the record cache has room, their records sit decoded in it: after a restart (or once
        the OS has given the files' pages back), a retrieve's first reads cost what later ones
        do, not a disk read and a decode a key. Stops at ``WARM_SHARE`` of the block cache,
        when ``stop`` is set, or when the store is being reopened; evicts nothing. While
        ``give_way`` says so (a request under way), it waits between two batches (up to
        ``_GIVE_WAY_MOST`` at a time): the interpreter is the requests', not a warm-up's."""
        budget = int(BLOCK_CACHE_BYTES * WARM_SHARE)
        cache = _BLOCK_CACHE
        assert cache is not None  # made by the first open
        read = 0
        decoding = True  # until the record cache is full
        for prefix, newest_first in prefixes:
            opts = ReadOptions()
            opts.set_iterate_upper_bound(keys.prefix_end(prefix))
            opts.set_readahead_size(WARM_READAHEAD)
            try:
                it = self._db.iter(opts)
            except DbClosedError:
                return self._warmth(read, False, True)
            if newest_first:
                it.seek_to_last()
            else:
                it.seek(prefix)
            step = it.prev if newest_first else it.next
            batch: list[bytes] = []
            while it.valid() and (not newest_first or it.key().startswith(prefix)):
                if decoding:
                    batch.append(it.key())
                    if len(batch) == _WARM_BATCH:
                        decoding = self._warm_records(batch)
                        batch = []
                step()
                read += 1
                if give_way is not None and read % _WARM_BATCH == 0:
                    _give_way(give_way, stop)
                if read % _WARM_CHECK == 0:
                    usage = cache.get_usage()
                    if usage >= budget or (stop is not None and stop.is_set()):
                        return self._warmth(read, usage >= budget, usage < budget)
            if decoding and batch:
                decoding = self._warm_records(batch)
        return self._warmth(read, False, False)

    def _warm_records(self, batch: list[bytes]) -> bool:
        """``batch`` into the record cache, read anew (the iterator's view may be older than a
        write since); False once they no longer fit."""
        try:
            return self.record_cache.fill(batch, self.get_raw_many)
        except DbClosedError:
            return False

    def _warmth(self, read: int, full: bool, stopped: bool) -> Warmth:
        assert _BLOCK_CACHE is not None
        return Warmth(read, _BLOCK_CACHE.get_usage(), full, stopped, len(self.record_cache))

    def recent_users(self) -> list[tuple[str, str]]:
        """(tenant, user_id) of every user with events, the latest to write first (those whose
        last event predates that record last)."""
        users = self.users()
        last = self.last_events(users)
        order = sorted(range(len(users)), key=lambda i: -1 if last[i] is None else last[i],
                       reverse=True)
        return [users[i] for i in order]

    def flush(self) -> None:
        """Write the memtable out to a table file."""
        self._db.flush()

    def rocksdb_property(self, name: str) -> str | None:
        """One of RocksDB's properties (``rocksdb.block-cache-usage``, ...), as text."""
        return self._db.property_value(name)

    def iter_prefix(self, prefix: bytes,
                    start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys under ``prefix`` in order, from ``start`` (a key under it: a page's cursor, one
        seek) or from the first."""
        for key, value in self._db.items(from_key=max(prefix, start or prefix)):
            if not key.startswith(prefix):
                break
            yield key, value

    def user_event_ids(self, tenant: str, user_id: str) -> Iterator[str]:
        prefix = keys.user_events_prefix(tenant, user_id)
        for key, _ in self.iter_prefix(prefix):
            yield key[len(prefix):].decode()

    def records(self, prefix: bytes) -> Iterator[dict[str, Any]]:
        for _, value in self.iter_prefix(prefix):
            yield unpack(value)

    def _log_entries(self, after: int, until: int | None,
                     max_scan: int | None) -> Iterator[tuple[int, list[bytes]]]:
        """(index, keys its command wrote) of the committed entries after ``after``, oldest
        first, up to ``until``, ``max_scan`` entries at most (``scan_budget``)."""
        max_scan = self.scan_budget if max_scan is None else max_scan
        for n, (key, value) in enumerate(self._db.items(from_key=keys.seq(after + 1))):
            if not key.startswith(keys.SEQ_PREFIX) or n >= max_scan:
                return
            index = keys.seq_index(key)
            if until is not None and index > until:
                return
            yield index, unpack(value)

    def scan_log(self, after: int, limit: int, kinds: set[str] | None = None,
                 until: int | None = None, max_scan: int | None = None,
                 ) -> tuple[list[tuple[int, list[dict[str, Any]]]], int]:
        """Committed entries after index ``after``, oldest first, as (index, records present),
        keeping only records of ``kinds`` (entries with none are skipped),
        up to index ``until``, looking at ``max_scan`` entries at most (``scan_budget``).
        Returns the entries and the last index scanned (the next cursor).
        """
        out: list[tuple[int, list[dict[str, Any]]]] = []
        scanned_to = after
        for index, written in self._log_entries(after, until, max_scan):
            if len(out) >= limit:
                break
            scanned_to = index
            wanted = [k for k in written if kinds is None or keys.kind_of(k) in kinds]
            records = [unpack(raw) for raw in self.get_raw_many(wanted) if raw is not None]
            if records:
                out.append((index, records))
        return out, scanned_to

    def count_log(self, after: int, limit: int, kinds: set[str] | None = None,
                  until: int | None = None) -> tuple[list[tuple[int, int]], int]:
        """``scan_log`` without the records: per entry, how many records of ``kinds`` its
        command wrote (read from the entry alone; one forgotten since still counts)."""
        out: list[tuple[int, int]] = []
        scanned_to = after
        for index, written in self._log_entries(after, until, None):
            if len(out) >= limit:
                break
            scanned_to = index
            count = sum(1 for k in written if kinds is None or keys.kind_of(k) in kinds)
            if count:
                out.append((index, count))
        return out, scanned_to

    def derived_for_user(self, kind: str, tenant: str, user_id: str,
                         streams: set[str] | None = None) -> list[dict[str, Any]]:
        """Every record of ``kind`` for one user, through the per-user listings: events in the
        order they were made (of ``streams`` only, if given), derived records by id."""
        if kind == "event":
            prefix = keys.user_events_prefix(tenant, user_id)
            named = None if streams is None else {s.encode() for s in streams}
            wanted = [keys.event(tenant, key[len(prefix):].decode())
                      for key, stream in self.iter_prefix(prefix)
                      if named is None or not stream or stream in named]
        else:
            prefix = keys.user_derived_prefix(kind, tenant, user_id)
            wanted = [keys.derived(kind, tenant, key[len(prefix):].decode())
                      for key, _ in self.iter_prefix(prefix)]
        found = [unpack(raw) for raw in self.get_raw_many(wanted) if raw is not None]
        if kind == "event" and streams is not None:
            return [e for e in found if e["stream_id"] in streams]
        return found

    def events_between(self, start_ms: int, end_ms: int, limit: int,
                       after: tuple[str, str] | None = None,
                       ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """Events whose id was made in [start_ms, end_ms), by (tenant, event id): a range scan
        per tenant, not a read of the log. Pages of ``limit``; returns the page and the
        (tenant, event id) to continue after, or None at the end."""
        low, high = id_floor(start_ms), id_floor(end_ms)
        out: list[dict[str, Any]] = []
        for tenant in self._event_tenants():
            if after is not None and tenant < after[0]:
                continue
            start = keys.event(tenant, low)
            if after is not None and tenant == after[0]:
                start = keys.event(tenant, after[1]) + b"\x00"  # just past it
            stop = keys.event(tenant, high)
            for key, value in self._db.items(from_key=start):
                if key >= stop:
                    break
                out.append(unpack(value))
                if len(out) == limit:
                    return out, (tenant, out[-1]["event_id"])
        return out, None

    def _event_tenants(self) -> Iterator[str]:
        """Every tenant with events, in order: one seek per tenant over the event keys."""
        start = keys.EVENTS_PREFIX
        while True:
            key = next((k for k, _ in self._db.items(from_key=start)), None)
            if key is None or not key.startswith(keys.EVENTS_PREFIX):
                return
            tenant = key.decode().split(keys.SEP, 2)[1]
            yield tenant
            start = keys.event(tenant, "")[:-1] + b"\x20"  # past this tenant

    def derivations(self, kind: str) -> dict[str, dict[str, int]]:
        """How many records of ``kind`` each derivation (the logic that made them) holds, per
        ingest day of their first source event: what a change of logic leaves to re-derive."""
        counts: dict[str, dict[str, int]] = {}
        for record in self.records(keys.derived_kind_prefix(kind)):
            sources = record.get("source_event_ids") or [""]
            day = ingest_day(sources[0])
            per_day = counts.setdefault(record.get("derivation", ""), {})
            per_day[day] = per_day.get(day, 0) + 1
        return counts

    def last_events(self, users: list[tuple[str, str]]) -> list[int | None]:
        """The log index of each user's last event (None: none, or stored before this was
        kept), in one multi-get."""
        found = self.get_raw_many([keys.user_last_event(t, u) for t, u in users])
        return [None if raw is None else int.from_bytes(raw, "big") for raw in found]

    def users(self) -> list[tuple[str, str]]:
        """Every (tenant, user_id) with events: one seek per user over the per-user listing."""
        out: list[tuple[str, str]] = []
        start = keys.USERS_PREFIX
        while True:
            key = next((k for k, _ in self._db.items(from_key=start)), None)
            if key is None or not key.startswith(keys.USERS_PREFIX):
                return out
            _, tenant, user_id, _ = key.decode().split(keys.SEP, 3)
            out.append((tenant, user_id))
            start = keys.user_events_prefix(tenant, user_id)[:-1] + b"\x20"  # past this user

    def digest(self) -> str:
        """SHA-256 over every key and value: equal digests mean identical replicas."""
        h = hashlib.sha256()
        for key, value in self._db.items():
            h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
        return h.hexdigest()


    def checkpoint(self, target: str | Path) -> None:
        """A consistent copy of the whole database at ``target`` (hard links where possible)."""
        Checkpoint(self._db).create_checkpoint(str(target))

    def replace_with(self, source: str | Path) -> None:
        """Swap this store's contents for a checkpoint (snapshot install on a lagging replica)."""
        with self._swap_lock:
            # Emptied before (nothing cached answers during the swap) and after: a read of the
            # old database that began after the first clear must not leave its values behind.
            self.record_cache.clear()
            try:
                self._db.close()
                self._wait_released()
                shutil.rmtree(self.path)
                shutil.copytree(source, self.path)
                self._db = _open(self.path)
            finally:
                self.record_cache.clear()

    def _wait_released(self, timeout: float = 30.0) -> None:
        # A reader's iterator keeps a closed database alive, and when it finally goes, RocksDB's
        # cleanup deletes every file at this path it does not know: the new checkpoint's files.
        # So swap only once the last reader let go (the path is locked until then).
        deadline = time.monotonic() + timeout
        while True:
            try:
                _open(self.path).close()
                return
            except Exception as exc:  # rocksdict raises a bare Exception for the LOCK file
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self) -> None:
        """Close the database. A store in RocksDB's error state (or on a full disk) raises a write
        error from close(); the files and the lock are released all the same, and what was
        acknowledged is in the WAL, so that error is not a reason to fail a shutdown."""
        try:
            if isinstance(self._db, _Reopening):
                self._db.close_old()
            else:
                self._db.close()
        except Exception as exc:  # rocksdict raises a bare Exception ("IO error: ...")
            log.warning("closing RocksDB: %s", exc)
