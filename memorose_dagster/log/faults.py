"""Storage faults seen by the Raft tick thread: a RocksDB write or a journal write that failed.

A committed entry that cannot be applied stays pending (pysyncobj does not advance its applied
index when ``apply_batch`` raises) and is applied again once the disk takes writes: ``Store.apply``
is idempotent by log index, so nothing is skipped or applied twice. ``FaultState`` paces those
retries (the tick runs every 5 ms; a retry per tick logged a traceback per tick: 261,000 lines) and
says so in the log once, then at most every ``LOG_EVERY`` seconds, then once when it clears.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("memorose.storage")

LOG_EVERY = 30.0  # seconds between "still failing" lines while a fault lasts
RETRY_FIRST = 0.1  # seconds before the first retry; doubles up to RETRY_MAX
RETRY_MAX = 1.0
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
FULL_TEXT = ("no space left on device", "disk full", "quota exceeded")


class StorageFault(Exception):
    """A write to this node's disk failed. ``full``: out of space (else another I/O error);
    ``source``: what was written (``rocksdb``, ``raft journal``)."""

    def __init__(self, message: str, full: bool, source: str):
        super().__init__(message)
        self.message = message
        self.full = full
        self.source = source

    @classmethod
    def of(cls, exc: BaseException, source: str) -> StorageFault:
        """RocksDB raises a bare Exception ("IO error: No space left on device: While appending
        to file: .../000004.log"); the journal an OSError. Both become a StorageFault."""
        if isinstance(exc, StorageFault):
            return exc
        text = str(exc) or type(exc).__name__
        full = getattr(exc, "errno", None) in FULL_ERRNOS or any(
            marker in text.lower() for marker in FULL_TEXT)
        return cls(f"{source}: {text}", full, source)


class FaultFile:
    """Test hook (``MEMOROSE_FAULT_FILE``): while this file exists, writes to RocksDB and to the
    Raft journal fail as if the disk were full, where a real ENOSPC is raised. A file naming
    one of them (``rocksdb`` or ``raft journal``) fails only that one."""

    def __init__(self, path: Path | None):
        self.path = path

    def check(self, source: str) -> None:
        if self.path is None:
            return
        try:
            only = self.path.read_text().strip()
        except FileNotFoundError:
            return
        if not only or source.startswith(only):
            raise StorageFault(f"{source}: IO error: No space left on device "
                               f"(injected: {self.path} exists)", True, source)


class FaultState:
    """The current storage fault of this node (or None), when to retry, and its log lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 log_every: float = LOG_EVERY):
        self._clock = clock
        self._log_every = log_every
        self._lock = threading.Lock()
        self.active: StorageFault | None = None
        self.since = 0.0
        self.failures = 0
        self._next_retry = 0.0
        self._pause = RETRY_FIRST
        self._logged = 0.0

    def failed(self, fault: StorageFault) -> None:
        now = self._clock()
        with self._lock:
            first = self.active is None
            if first:
                self.since, self.failures, self._pause = now, 0, RETRY_FIRST
            self.active = fault
            self.failures += 1
            self._next_retry = now + self._pause
            self._pause = min(self._pause * 2, RETRY_MAX)
            due = first or now - self._logged >= self._log_every
            if due:
                self._logged = now
        if first:
            log.error("storage fault, writes refused until it clears (retrying every %.0f s): "
                      "%s", RETRY_MAX, fault.message)
        elif due:
            log.error("storage fault for %.0f s (%d attempts): %s", now - self.since,
                      self.failures, fault.message)

    def cleared(self) -> None:
        with self._lock:
            fault, self.active = self.active, None
        if fault is not None:
            log.warning("storage fault cleared after %.1f s (%d attempts); applying again",
                        self._clock() - self.since, self.failures)

    def due(self) -> bool:
        """True when no fault is active, or its next retry is due."""
        with self._lock:
            return self.active is None or self._clock() >= self._next_retry

    def describe(self) -> dict[str, object] | None:
        fault = self.active
        if fault is None:
            return None
        return {"reason": "storage_full" if fault.full else "storage_error",
                "source": fault.source, "message": fault.message,
                "for_s": round(self._clock() - self.since, 1), "attempts": self.failures}
