"""The RocksDB state every replica holds: records applied in Raft commit order.

``apply`` is the state machine's transition. It runs on every replica with the same input in the
same order, so it must be deterministic: no clock, no randomness, no network. It is idempotent by
log index: an entry at or below the applied watermark is skipped, which makes the journal replay
after a restart (pysyncobj re-applies entries after its last dump) a no-op.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rocksdict import Checkpoint, DbClosedError, Options, Rdict, WriteBatch

from memorose_dagster.ids import id_floor, id_time_ms
from memorose_dagster.log import keys
from memorose_dagster.log.access_totals import apply_access
from memorose_dagster.records import DERIVED_KINDS, FINAL_REASONS, KIND_OF_LAYER, pack, unpack

StoreClosed = DbClosedError  # a read while a snapshot replaces the store, or after close


def ingest_day(event_id: str) -> str:
    """The UTC day inside an event id (its pipeline partition), or "" for an id without one."""
    try:
        return datetime.fromtimestamp(id_time_ms(event_id) / 1000, UTC).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    return opts


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), _options())
        self._swap_lock = threading.Lock()


    @property
    def applied_index(self) -> int:
        raw = self._db.get(keys.APPLIED)
        return int.from_bytes(raw, "big") if raw else 0

    def apply(self, records: list[dict[str, Any]], log_index: int) -> list[dict[str, Any]] | None:
        """Write one committed command atomically. Returns the records as stored, or None if
        this index was applied before (replay)."""
        if log_index <= self.applied_index:
            return None
        batch = WriteBatch(raw_mode=True)
        written: list[bytes] = []
        applied: list[dict[str, Any]] = []
        staged: dict[bytes, dict[str, Any]] = {}  # access totals written earlier in this batch
        for record in records:
            record = {**record, "log_index": log_index}
            if record["kind"] == "access":
                done = apply_access(batch, lambda k: staged.get(k) or self.get(k), record)
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
                batch.put(keys.user_event(record["tenant"], record["user_id"],
                                          record["event_id"]), b"")
            elif record["kind"] in DERIVED_KINDS:
                batch.put(keys.user_derived(record["kind"], record["tenant"], record["user_id"],
                                            record["id"]), b"")
            key = keys.record_key(record)
            batch.put(key, pack(record))
            written.append(key)
            applied.append(record)
        batch.put(keys.seq(log_index), pack(written))
        batch.put(keys.APPLIED, log_index.to_bytes(8, "big"))
        self._db.write(batch)
        return applied

    def _apply_tombstone(self, batch: WriteBatch, record: dict[str, Any]) -> None:
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
        return self._db.get(keys.event(tenant, event_id)) is not None \
            or self._db.get(keys.tombstone(tenant, "event", event_id)) is not None

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

    def scan_log(self, after: int, limit: int, kinds: set[str] | None = None,
                 until: int | None = None, max_scan: int = 100_000,
                 ) -> tuple[list[tuple[int, list[dict[str, Any]]]], int]:
        """Committed entries after index ``after``, oldest first, as (index, records present),
        keeping only records of ``kinds`` (entries with none are skipped),
        up to index ``until``. Returns the entries and the last index scanned (the next cursor).
        """
        out: list[tuple[int, list[dict[str, Any]]]] = []
        scanned_to = after
        for n, (key, value) in enumerate(self._db.items(from_key=keys.seq(after + 1))):
            if not key.startswith(keys.SEQ_PREFIX) or len(out) >= limit or n >= max_scan:
                break
            index = keys.seq_index(key)
            if until is not None and index > until:
                break
            scanned_to = index
            wanted = [k for k in unpack(value) if kinds is None or keys.kind_of(k) in kinds]
            records = [r for r in (self.get(k) for k in wanted) if r is not None]
            if records:
                out.append((index, records))
        return out, scanned_to

    def derived_for_user(self, kind: str, tenant: str, user_id: str,
                         streams: set[str] | None = None) -> list[dict[str, Any]]:
        """Every record of ``kind`` for one user, through the per-user listings: events in the
        order they were made (of ``streams`` only, if given), derived records by id."""
        if kind == "event":
            found = (self.get(keys.event(tenant, eid)) for eid in self.user_event_ids(tenant,
                                                                                    user_id))
            return [e for e in found if e is not None
                    and (streams is None or e["stream_id"] in streams)]
        prefix = keys.user_derived_prefix(kind, tenant, user_id)
        found = (self.get(keys.derived(kind, tenant, key[len(prefix):].decode()))
                 for key, _ in self.iter_prefix(prefix))
        return [r for r in found if r is not None]

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
            self._db.close()
            self._wait_released()
            shutil.rmtree(self.path)
            shutil.copytree(source, self.path)
            self._db = Rdict(str(self.path), _options())

    def _wait_released(self, timeout: float = 30.0) -> None:
        # A reader's iterator keeps a closed database alive, and when it finally goes, RocksDB's
        # cleanup deletes every file at this path it does not know: the new checkpoint's files.
        # So swap only once the last reader let go (the path is locked until then).
        deadline = time.monotonic() + timeout
        while True:
            try:
                Rdict(str(self.path), _options()).close()
                return
            except Exception as exc:  # rocksdict raises a bare Exception for the LOCK file
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self) -> None:
        self._db.close()
