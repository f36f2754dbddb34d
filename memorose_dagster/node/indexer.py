"""Keeps a node's derived indexes (Tantivy, LanceDB) in step with its RocksDB store.

The indexer follows the store's committed log (the ``s/`` keys) from its own watermark, which it
persists after every commit of the indexes. One code path serves live indexing, catch-up after a
crash (entries applied but not yet indexed), snapshot installs and ``memorose reindex``.

Live, the state machine also hands over each command's records as it applied them (already
checked against their types): while those follow the watermark without a gap, the indexer takes
them instead of reading the records back from RocksDB, decoding and checking them again. Any gap
(a restart, a snapshot install, more held than ``HANDED_MAX_RECORDS``) falls back to the log.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from memorose_dagster.index.fulltext import FullTextIndex, TextDoc
from memorose_dagster.index.vectors import VectorIndex, VectorRow
from memorose_dagster.log import keys
from memorose_dagster.log.store import Outcome, Store
from memorose_dagster.log.validate import InvalidRecord, validate_record
from memorose_dagster.records import KIND_OF_LAYER, LAYER_OF_KIND, record_id, vector_from_bytes

log = logging.getLogger("memorose.indexer")

PAGE = 2000
OPTIMIZE_EVERY_ROWS = 20_000  # vector rows written between LanceDB compactions
NOT_INDEXED = frozenset({"access"})  # kinds neither Tantivy nor LanceDB hold
# Records held for the indexer as applied (a vector record is ~1.6 KB): past this many it reads
# them back from RocksDB instead, so a lagging indexer costs no memory.
HANDED_MAX_RECORDS = 20_000


class Indexer:
    def __init__(self, store: Store, fulltext: FullTextIndex, vectors: VectorIndex,
                 watermark_path: Path):
        self._store = store
        self.fulltext = fulltext
        self.vectors = vectors
        self._watermark_path = watermark_path
        # An index dropped for a new layout (or missing) is rebuilt from RocksDB: both, so
        # neither keeps rows the other lost.
        rebuilt = fulltext.rebuilt or vectors.rebuilt
        self.indexed = 0 if rebuilt else self._read_watermark()
        if rebuilt:
            fulltext.clear()
            vectors.clear()
        self.skipped = 0  # records that could not be indexed (logged once each)
        self._cond = threading.Condition()
        self._wanted = 0
        self._stop = False
        self._rows_since_optimize = 0
        self._optimizing = threading.Lock()
        # (previous log index, log index, records as applied) from the state machine
        self._handed: collections.deque[tuple[int, int, list[dict[str, Any]]]] = \
            collections.deque()
        self._handed_records = 0
        self._thread = threading.Thread(target=self._run, name="memorose-indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def notify(self, log_index: int) -> None:
        """Index up to ``log_index``, reading what was applied back from RocksDB (after a
        snapshot install: what the state machine handed over before it no longer counts)."""
        with self._cond:
            self._drop_handed()
            self._wanted = max(self._wanted, log_index)
            self._cond.notify_all()

    def applied(self, log_index: int, outcome: Outcome) -> None:
        """Called by the state machine after it applied ``log_index``: the records as applied."""
        with self._cond:
            if self._handed_records + len(outcome.records) > HANDED_MAX_RECORDS:
                self._drop_handed()
            self._handed.append((outcome.previous, log_index, outcome.records))
            self._handed_records += len(outcome.records)
            self._wanted = max(self._wanted, log_index)
            self._cond.notify_all()

    @property
    def held(self) -> int:
        """Records handed over by the state machine and not indexed yet."""
        return self._handed_records

    def _drop_handed(self) -> None:
        self._handed.clear()
        self._handed_records = 0

    def _take_handed(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """The handed entries that follow the watermark without a gap (up to ``PAGE``), taken
        out of the queue; [] when the next entry was not handed over."""
        taken: list[tuple[int, list[dict[str, Any]]]] = []
        with self._cond:
            while self._handed and self._handed[0][1] <= self.indexed:
                self._handed_records -= len(self._handed.popleft()[2])
            at = self.indexed
            while self._handed and self._handed[0][0] == at and len(taken) < PAGE:
                _, at, records = self._handed.popleft()
                self._handed_records -= len(records)
                taken.append((at, records))
        return taken

    def wait_for(self, log_index: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.indexed < log_index:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def reset(self) -> None:
        """Drop both indexes; the thread rebuilds them from RocksDB."""
        with self._cond:
            self.fulltext.clear()
            self.vectors.clear()
            self._drop_handed()
            self.indexed = 0
            self._write_watermark(0)
            self._wanted = max(self._wanted, self._store.applied_index)
            self._cond.notify_all()

    def catch_up(self) -> int:
        """Index everything applied but not yet indexed, in this thread. Returns entries done."""
        done = 0
        while True:
            handed = self._take_handed()
            if handed:
                entries, scanned_to = [e for e in handed if e[1]], handed[-1][0]
            else:
                # scanned_to moves past entries with nothing left to index (a command whose
                # records were all skipped, or forgotten since): the watermark must move past
                # them too.
                entries, scanned_to = self._store.scan_log(self.indexed, PAGE)
            if scanned_to <= self.indexed:
                return done
            if entries:
                self._index(entries, checked=bool(handed))
            self._advance(scanned_to)
            done += len(entries)

    def _run(self) -> None:
        with self._cond:
            self._wanted = max(self._wanted, self._store.applied_index)
        while True:
            with self._cond:
                while not self._stop and self._wanted <= self.indexed:
                    self._cond.wait()
                if self._stop:
                    return
            try:
                self.catch_up()
            except Exception:  # keep the node up; the next notify retries from the watermark
                log.exception("indexing failed after log index %d", self.indexed)
                time.sleep(0.5)

    def _index(self, entries: list[tuple[int, list[dict[str, Any]]]], checked: bool) -> None:
        # scan_log returns each key's current record, so a record rewritten by several commands
        # of this page comes back several times (handed over: each version): keep one action per
        # (tenant, id), the last in log order. A record read back is checked against its type
        # again (a store written by an older version); one that cannot be indexed is skipped for
        # good, not retried.
        docs: dict[tuple[str, str], TextDoc | None] = {}
        rows: dict[tuple[str, str], VectorRow | None] = {}
        # Events the state machine just applied are new to the store (a resent or forgotten
        # id is not applied again), so no document of theirs is indexed yet: nothing to
        # replace. Read back from the log (after a restart) they may be.
        new: set[tuple[str, str]] = set()
        for index, records in entries:
            for stored in records:
                if isinstance(stored, dict) and stored.get("kind") in NOT_INDEXED:
                    continue  # an access flush holds a thousand counts: nothing to index
                try:
                    record = stored if checked else validate_record(stored)
                except InvalidRecord as exc:
                    self._skip(index, stored, str(exc))
                    continue
                kind = record["kind"]
                if kind in LAYER_OF_KIND:
                    rid = record_id(record)
                    docs[record["tenant"], rid] = TextDoc(
                        rid, record["tenant"], record["user_id"], record.get("stream_id", ""),
                        LAYER_OF_KIND[kind], record["content"], record.get("context", ""))
                    if checked and kind == "event":
                        new.add((record["tenant"], rid))
                elif kind == "vector":
                    row = self._vector_row(index, record)
                    if row is not None:
                        rows[row.tenant, row.id] = row
                elif kind == "tombstone":
                    docs[record["tenant"], record["target_id"]] = None
                    rows[record["tenant"], record["target_id"]] = None
        self.fulltext.upsert([d for d in docs.values() if d is not None], new)
        self.fulltext.delete([key for key, d in docs.items() if d is None])
        self.fulltext.commit()
        self.vectors.upsert([r for r in rows.values() if r is not None])
        self.vectors.delete([key for key, r in rows.items() if r is None])
        self._rows_since_optimize += len(rows)
        if self._rows_since_optimize >= OPTIMIZE_EVERY_ROWS:
            self._rows_since_optimize = 0
            threading.Thread(target=self._optimize, name="memorose-optimize", daemon=True).start()

    def _skip(self, log_index: int, record: Any, why: str) -> None:
        self.skipped += 1
        kind = record.get("kind") if isinstance(record, dict) else None
        log.warning("log index %d: a %r record cannot be indexed (%s); skipped", log_index,
                    kind, why)

    def _advance(self, index: int) -> None:
        self._write_watermark(index)
        with self._cond:
            self.indexed = index
            self._cond.notify_all()

    def _optimize(self) -> None:
        """Compaction and index builds take seconds: off the indexer thread, one at a time, so
        acknowledgements never wait on them (LanceDB commits concurrent writes optimistically)."""
        if not self._optimizing.acquire(blocking=False):
            return
        try:
            self.vectors.optimize()
        except Exception:  # a failed compaction costs speed only; the next one retries
            log.exception("LanceDB optimize failed")
        finally:
            self._optimizing.release()

    def _vector_row(self, log_index: int, vector: dict[str, Any]) -> VectorRow | None:
        if vector["model"] != self.vectors.model:  # another provider's space: not comparable
            return None
        if len(vector["values"]) != 4 * self.vectors.dim:
            self._skip(log_index, vector, f"{len(vector['values']) // 4} values for a "
                                          f"{self.vectors.dim}-d index")
            return None
        kind = KIND_OF_LAYER[vector["layer"]]
        target = self._store.get(keys.target_key(vector["tenant"], kind, vector["record_id"]))
        if target is None:  # forgotten since: nothing to index
            return None
        return VectorRow(vector["record_id"], vector["tenant"], target["user_id"],
                         target.get("stream_id", ""), vector["layer"],
                         vector_from_bytes(vector["values"]))

    def _read_watermark(self) -> int:
        try:
            return int(self._watermark_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def _write_watermark(self, value: int) -> None:
        tmp = self._watermark_path.with_suffix(".tmp")
        tmp.write_text(str(value))
        os.replace(tmp, self._watermark_path)
