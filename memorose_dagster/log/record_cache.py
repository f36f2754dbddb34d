"""Decoded records kept in memory for the reads that meet the same ones again and again.

A retrieve reads ~150 keys: the candidates, their first memories, the entities the question
names, the results' source events. A user's questions keep meeting the same records, and each
read costs a RocksDB lookup (~5-10 us through rocksdict) and a msgpack decode. The cache holds
what the store holds, never older: the state machine's one write names every key it puts or
deletes, and those leave the cache as the write lands; a read that overlapped any write leaves
nothing in it (it may have read a value the write replaced). Absent keys are kept too (a
question's word runs that name no entity), and a write that creates one removes it the same way.

Records come out shared: callers read them and never change them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from memorose_dagster.records import unpack

DEFAULT_ENTRIES = 50_000  # a decoded memory with its lists is ~1-2 KB: up to ~100 MB

_ABSENT = object()


def entries_from_env() -> int:
    """``MEMOROSE_RECORD_CACHE``: records kept decoded (0: none)."""
    configured = os.environ.get("MEMOROSE_RECORD_CACHE", "")
    return int(configured) if configured.isdigit() else DEFAULT_ENTRIES


class RecordCache:
    def __init__(self, entries: int):
        self._max = entries
        self._entries: OrderedDict[bytes, Any] = OrderedDict()
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
                value = self._entries.get(key, _ABSENT)
                if value is not _ABSENT:
                    self._entries.move_to_end(key)
                    found[key] = value
            writes = self._writes
        missing = [key for key in dict.fromkeys(wanted) if key not in found]
        self.hits += len(wanted) - len(missing)
        self.misses += len(missing)
        if missing:
            decoded = [None if raw is None else unpack(raw) for raw in read(missing)]
            found.update(zip(missing, decoded, strict=True))
            if self._max > 0:
                with self._lock:
                    if self._writes == writes:
                        self._entries.update(zip(missing, decoded, strict=True))
                        while len(self._entries) > self._max:
                            self._entries.popitem(last=False)
        return [found[key] for key in wanted]

    def written(self, keys: Iterable[bytes]) -> None:
        """Keys a write put or deleted, called once it landed (or failed)."""
        with self._lock:
            self._writes += 1
            for key in keys:
                self._entries.pop(key, None)

    def clear(self) -> None:
        """The whole store changed (a snapshot installed)."""
        with self._lock:
            self._writes += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
