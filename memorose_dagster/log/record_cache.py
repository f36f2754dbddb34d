"""Decoded records kept in memory for the reads that meet the same ones again and again.

A retrieve reads ~150 keys: the candidates, their first memories, the entities the question
names, the results' source events. A user's questions keep meeting the same records, and each
read costs a RocksDB lookup (~5-10 us through rocksdict) and a msgpack decode. The cache holds
what the store holds, never older: the state machine's one write names every key it puts or
deletes, and those leave the cache as the write lands; a read that overlapped any write leaves
nothing in it (it may have read a value the write replaced). Absent keys are kept too (a
question's word runs that name no entity), and a write that creates one removes it the same way.
It holds up to a budget of memory (estimated from the stored bytes), the least recently read
leaving first; a starting node fills it with what a retrieve reads (``Store.warm``).

Records come out shared: callers read them and never change them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from memorose_dagster.records import unpack

DEFAULT_MB = 256  # at 100k events with their memories, all of them (~215 MB) fit
# What a decoded record costs in memory, estimated from its stored bytes: measured over a 100k
# event store, a memory of 0.9 KB stored takes ~3.6 KB decoded, an event of 0.24 KB ~1.1 KB,
# an insight or an entity of 1-2 KB ~2-4 KB. An absent key costs its key and the slot.
PER_STORED_BYTE = 3
PER_ENTRY = 400
ABSENT_BYTES = 200


def budget_from_env() -> int:
    """``MEMOROSE_RECORD_CACHE_MB``: megabytes of decoded records kept in memory (0: none)."""
    configured = os.environ.get("MEMOROSE_RECORD_CACHE_MB", "")
    return (int(configured) if configured.isdigit() else DEFAULT_MB) * 1024 * 1024


def _cost(raw: bytes | None) -> int:
    return ABSENT_BYTES if raw is None else PER_STORED_BYTE * len(raw) + PER_ENTRY


class RecordCache:
    def __init__(self, budget_bytes: int):
        self._max = budget_bytes
        self._bytes = 0  # the estimated memory of what it holds
        self._entries: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()  # record, its cost
        self._lock = threading.Lock()
        self._writes = 0  # bumped by every write: a read that saw it change keeps nothing
        self.hits = 0  # counted outside the lock: approximate under concurrent reads
        self.misses = 0

    def get_many(self, wanted: list[bytes],
                 read: Callable[[list[bytes]], list[bytes | None]],
                 ) -> list[dict[str, Any] | None]:
        """The decoded record of each key (None where absent); what the cache lacks is read
        through ``read`` (a multi-get of the raw bytes) in one call."""
        found: dict[bytes, Any] = {}
        with self._lock:
            for key in wanted:
                entry = self._entries.get(key)
                if entry is not None:
                    if type(entry[0]) is bytes:  # written while there was room: decoded once
                        entry = self._entries[key] = (unpack(entry[0]), entry[1])
                    self._entries.move_to_end(key)
                    found[key] = entry[0]
            writes = self._writes
        missing = [key for key in dict.fromkeys(wanted) if key not in found]
        self.hits += len(wanted) - len(missing)
        self.misses += len(missing)
        if missing:
            found.update(self._read(missing, read, writes) or {})  # None: only without evict
        return [found[key] for key in wanted]

    def fill(self, wanted: list[bytes], read: Callable[[list[bytes]], list[bytes | None]],
             ) -> bool:
        """Read and keep the records of ``wanted`` that it lacks, evicting nothing: a warm-up
        (``Store.warm``), not counted as hits or misses. False when not all of them fitted."""
        if self._max <= 0:
            return False
        with self._lock:
            missing = [key for key in dict.fromkeys(wanted) if key not in self._entries]
            writes = self._writes
        return not missing or self._read(missing, read, writes, evict=False) is not None

    def _read(self, missing: list[bytes], read: Callable[[list[bytes]], list[bytes | None]],
              writes: int, evict: bool = True) -> dict[bytes, Any] | None:
        """``missing`` read and decoded, kept unless a write landed since ``writes`` was taken
        (it may have replaced what was read). With ``evict`` False, those that fit, in order,
        and None when not all did."""
        raws = read(missing)
        decoded = {key: None if raw is None else unpack(raw)
                   for key, raw in zip(missing, raws, strict=True)}
        if self._max <= 0:
            return decoded
        costs = [_cost(raw) for raw in raws]
        with self._lock:
            if self._writes != writes:
                return decoded
            for key, cost in zip(missing, costs, strict=True):
                if not evict and self._bytes + cost > self._max:
                    return None  # what fitted stays
                self._drop(key)  # read by a concurrent miss too
                self._put(key, (decoded[key], cost))
            self._evict()
        return decoded

    def written(self, keys: Iterable[bytes], landed: dict[bytes, bytes] | None = None,
                room: dict[bytes, bytes] | None = None) -> None:
        """Keys a write put or deleted, called once it landed (or failed). Of those, ``landed``
        are kept decoded with the value the write left (the most recently read), and ``room``
        kept as written (decoded on their first read) while the cache has room, evicting
        nothing: a bulk load of events never pushes out what questions read."""
        decoded = {}
        if landed and self._max > 0:
            with contextlib.suppress(Exception):  # never keep the keys from leaving
                decoded = {key: (unpack(raw), _cost(raw)) for key, raw in landed.items()}
        with self._lock:
            self._writes += 1
            for key in keys:
                self._drop(key)
            for key, entry in decoded.items():
                self._put(key, entry)
            self._evict()
            for key, raw in (room or {}).items():
                cost = _cost(raw)
                if self._bytes + cost > self._max:
                    break
                self._put(key, (raw, cost))
                self._entries.move_to_end(key, last=False)  # the first to leave

    # Under the lock: every change of what it holds goes through these three.
    def _put(self, key: bytes, entry: tuple[Any, int]) -> None:
        self._entries[key] = entry
        self._bytes += entry[1]

    def _drop(self, key: bytes) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1]

    def _evict(self) -> None:
        """The least recently read leave until it is within its budget."""
        while self._bytes > self._max:
            self._bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        """The whole store changed (a snapshot installed)."""
        with self._lock:
            self._writes += 1
            self._entries.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        """The estimated memory of the records it holds."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
