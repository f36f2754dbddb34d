"""The state-machine transition of an ``access`` record: a retrieval count added into the
stored running total of one memory. Counting happens on the node (``node/access.py``); the sum
is made here, in commit order, so every replica holds the same totals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from memorose_dagster.log import keys
from memorose_dagster.records import pack


class Batch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...


def apply_access(batch: Batch, get: Callable[[bytes], dict[str, Any] | None],
                 record: dict[str, Any], exists: Callable[[bytes], bool] | None = None,
                 ) -> tuple[bytes, dict[str, Any]] | None:
    """The state-machine transition of one ``access`` record: add its count to the stored total.

    Deterministic (no clock: ``last_access`` comes from the record). Returns the key and the
    record as stored, or None when the target record is gone (a forgotten memory keeps no
    counts). ``get`` must see earlier records of the same command when one command may carry
    two deltas for the same record (``AccessLog`` never sends two). ``exists`` tells whether
    the target is stored without decoding it (a memory's bytes are large; a flush holds a
    thousand counts); by default ``get`` does.
    """
    tenant, record_id = record["tenant"], record["record_id"]
    target = keys.target_key(tenant, record["target_kind"], record_id)
    if not (exists(target) if exists is not None else get(target) is not None):
        return None
    key = keys.access(tenant, record_id)
    total = get(key) or {}
    stored = {**record, "count": int(total.get("count", 0)) + int(record["count"]),
              "last_access": max(float(total.get("last_access", 0.0)),
                                 float(record["last_access"]))}
    batch.put(key, pack(stored))
    return key, stored
