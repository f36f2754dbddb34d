"""Can this node take writes? Its disk must have room (a free-space floor, checked before a
command is proposed) and its last write must not have failed (a storage fault, seen by the Raft
tick thread). Either problem makes the node *degraded*: it refuses writes at once with 507
``storage_full`` (or 503 ``storage_error`` for another I/O error) instead of letting them time
out, it says so in ``/health`` and cluster status, and it keeps serving reads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memorose_dagster.errors import StorageError, StorageFull
from memorose_dagster.log.faults import LOG_EVERY, FaultState

log = logging.getLogger("memorose.storage")

FLOOR_MAX = 256 * 1024 * 1024  # default floor: 256 MiB or 1% of the disk, whichever is smaller
FLOOR_SHARE = 0.01
STATVFS_EVERY = 1.0  # seconds a free-space reading is reused: a write asks, not a syscall each


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class StorageHealth:
    def __init__(self, home: Path, min_free_bytes: int | None, faults: FaultState,
                 clock: Callable[[], float] = time.monotonic,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs):
        self._home = home
        self._configured = min_free_bytes
        self._faults = faults
        self._clock = clock
        self._statvfs = statvfs
        self._lock = threading.Lock()
        self._read_at = -STATVFS_EVERY
        self._free = self._total = 0
        self._low_since: float | None = None
        self._low_logged = 0.0

    def _space(self) -> tuple[int, int]:
        """(free bytes for this process, disk size) of the data directory's file system."""
        now = self._clock()
        with self._lock:
            if now - self._read_at >= STATVFS_EVERY:
                st = self._statvfs(str(self._home))
                self._free, self._total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
                self._read_at = now
            return self._free, self._total

    def floor(self, total: int) -> int:
        if self._configured is not None:
            return self._configured
        return min(FLOOR_MAX, int(total * FLOOR_SHARE))

    def _low_space(self) -> dict[str, Any] | None:
        free, total = self._space()
        floor = self.floor(total)
        low = free < floor
        now = self._clock()
        if low and (self._low_since is None or now - self._low_logged >= LOG_EVERY):
            first = self._low_since is None
            self._low_since = self._low_since if not first else now
            self._low_logged = now
            log.warning("%s %s free on %s, below the floor of %s (MEMOROSE_MIN_FREE_BYTES): "
                        "writes refused until space is freed",
                        "low disk space:" if first else "still low on disk space:",
                        mib(free), self._home, mib(floor))
        elif not low and self._low_since is not None:
            log.warning("disk space back above the floor (%s free, floor %s) after %.0f s; "
                        "writes accepted again", mib(free), mib(floor), now - self._low_since)
            self._low_since = None
        if not low:
            return None
        return {"reason": "storage_full", "source": "free space floor",
                "message": f"{mib(free)} free on {self._home}, below the floor of {mib(floor)} "
                           "(MEMOROSE_MIN_FREE_BYTES)",
                "free_bytes": free, "min_free_bytes": floor}

    def problem(self) -> dict[str, Any] | None:
        """The reason this node is degraded, or None: a storage fault first, then low space."""
        return self._faults.describe() or self._low_space()

    def faulted(self) -> bool:
        return self._faults.active is not None

    def check_writable(self) -> None:
        """Raise ``StorageFull`` / ``StorageError`` if a write proposed now could not be applied
        here. Called before a command is proposed: nothing is written when it raises."""
        problem = self.problem()
        if problem is not None:
            raise _error(problem, "writes are refused until it clears; reads still work")

    def check_in_flight(self) -> None:
        """While a write is waiting for its commit: raise at once if this node can no longer
        apply it. The command may still be committed and applied once the disk recovers."""
        problem = self._faults.describe()
        if problem is not None:
            raise _error(problem, "the write was sent before the fault and may still be applied "
                                  "once it clears: resend it with the same event ids (safe) "
                                  "or to another node")

    def report(self) -> dict[str, Any]:
        problem = self.problem()
        if problem is None:
            return {"status": "ok"}
        return {"status": "degraded", "reason": f"{problem['reason']}: {problem['message']}",
                "storage": problem}


def _error(problem: dict[str, Any], then: str) -> StorageFull | StorageError:
    kind = StorageFull if problem["reason"] == "storage_full" else StorageError
    what = "disk full" if kind is StorageFull else "storage error"
    details = {k: problem[k] for k in ("free_bytes", "min_free_bytes") if k in problem}
    return kind(f"{what} on this node ({problem['message']}): {then}", **details)
