"""Access reinforcement: how often each memory is retrieved, counted in memory, flushed through
the log.

Retrieval is a read and must stay one: counting a hit into RocksDB directly would be a change of
state outside the log (DESIGN principle 1), and a log command per hit would turn every read into
a Raft round. So ``AccessLog`` counts hits per record in memory and flushes them, every
``FLUSH_EVERY_SECONDS`` or ``FLUSH_EVERY_HITS``, as ONE log command of ``access`` records
(deltas). Each replica's state machine adds a delta into the record's running total
(``log/access_totals.py``), so the totals are the same everywhere and decay
(``memory/forget.py``) reads them like any other record.

Counts are approximate by design: hits still in memory when a node dies are lost; a flush that
timed out is dropped (it may have committed); one the cluster refused is kept for the next flush
(which counts it twice in the rare case the refusal hid a commit: a leader change mid-flight).
Only L1 and L2 hits are counted: decay and ranking use nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from memorose_dagster.errors import CommitTimeout, MemoroseError, StorageError, StorageFull
from memorose_dagster.records import KIND_OF_LAYER, MEMORY_LAYERS, Access

log = logging.getLogger("memorose.access")

# Rarely: a flush is ~40 us of Python per counted record on every replica (the command's checks,
# the running totals read and written), holding the GIL beside the retrieves. Every 250 hits it
# landed in 4% of the retrieves of a busy node and made their p99 (25 -> 31 ms in process at
# 100k events); every 30 s the same work lands once, and a memory hit again meanwhile is one
# record, not several. Decay reads the totals nightly; 30 s later changes nothing there.
FLUSH_EVERY_SECONDS = 30.0
FLUSH_EVERY_HITS = 10_000


class Committer(Protocol):
    def submit(self, records: list[dict[str, Any]], wait_indexed: bool = True) -> int: ...


class AccessLog:
    """Thread-safe hit counter with a flusher thread. ``record`` is cheap: call it per retrieve."""

    def __init__(self, node: Committer, flush_every: float = FLUSH_EVERY_SECONDS,
                 flush_hits: int = FLUSH_EVERY_HITS, clock: Callable[[], float] = time.time):
        self._node = node
        self._flush_every = flush_every
        self._flush_hits = flush_hits
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[tuple[str, str, str, str], list[float]] = {}
        self._hits = 0
        self._stop = False
        self._backoff = False  # the last flush failed: wait a full period before the next
        self._thread = threading.Thread(target=self._run, name="memorose-access", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and flush what is left."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.flush()

    def record(self, tenant: str, results: Iterable[Mapping[str, Any]]) -> None:
        """Count the hits of one retrieve (its results: ``id``, ``layer``, ``user_id``)."""
        now = self._clock()
        with self._wake:
            for result in results:
                layer = result.get("layer", "")
                if layer not in MEMORY_LAYERS:
                    continue
                kind = KIND_OF_LAYER[layer]
                entry = self._pending.setdefault(
                    (tenant, result["user_id"], kind, result["id"]), [0, now])
                entry[0] += 1
                entry[1] = max(entry[1], now)
                self._hits += 1
            if self._hits >= self._flush_hits:
                self._wake.notify_all()

    def flush(self) -> int | None:
        """Commit the counts so far as one log command; its index, or None if there were none."""
        with self._lock:
            pending, self._pending, self._hits = self._pending, {}, 0
        if not pending:
            return None
        records = [Access(tenant=tenant, user_id=user, record_id=rid, target_kind=kind,
                          count=int(count), last_access=last).to_dict()
                   for (tenant, user, kind, rid), (count, last) in sorted(pending.items())]
        try:
            return self._node.submit(records, wait_indexed=False)
        except CommitTimeout:
            log.warning("access flush of %d records timed out; dropped", len(records))
        except (StorageFull, StorageError):  # said once by the storage log; keep the counts
            self._restore(pending)
            self._backoff = True
        except MemoroseError as exc:  # not committed: keep the counts for the next flush
            log.warning("access flush failed (%s); retrying later", exc.message)
            self._restore(pending)
            self._backoff = True
        return None

    def _restore(self, pending: dict[tuple[str, str, str, str], list[float]]) -> None:
        with self._lock:
            for key, (count, last) in pending.items():
                entry = self._pending.setdefault(key, [0, last])
                entry[0] += count
                entry[1] = max(entry[1], last)
                self._hits += int(count)

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stop and (self._backoff or self._hits < self._flush_hits):
                    self._wake.wait(self._flush_every)
                self._backoff = False
                if self._stop:
                    return
            try:
                self.flush()
            except Exception:  # keep counting; the next period retries
                log.exception("access flush failed")
