"""RocksDB key layout. Every key of the store is built here and nowhere else.

Components are joined by ``\\x1f`` (ASCII unit separator), which the API refuses inside ids, so a
user id may contain ``/`` or ``:`` without ever colliding with another key. Tenant comes first in
every data key: isolation is a key prefix, never a filter applied after the read.

    m\\x1fapplied                          -> u64 BE: last Raft index applied to this store
    m\\x1frejected\\x1f{log_index:016x}      -> msgpack {reason, clashes}: a committed command
                                             the state machine skipped as a whole
    e\\x1f{tenant}\\x1f{event_id}             -> L0 event (msgpack map)
    u\\x1f{tenant}\\x1f{user_id}\\x1f{event_id}   -> the event's stream id (a user's events, in
                                             time order; b"" in stores written before)
    r\\x1f{kind}\\x1f{tenant}\\x1f{id}          -> derived record: kind l1, l2, entity, relation,
                                             access (a record's retrieval count)
    x\\x1f{kind}\\x1f{tenant}\\x1f{user_id}\\x1f{id} -> u64 BE: the log index that last wrote the
                                             record (a user's derived records of a kind; b""
                                             in stores written before, and for access totals)
    l\\x1f{tenant}\\x1f{user_id}              -> u64 BE: the log index of the user's last event
                                             (a chunk of a backlog defers the user's graph and
                                             insights to a later chunk holding more)
    v\\x1f{tenant}\\x1f{record_id}            -> vector record (msgpack, float32 bytes inside)
    t\\x1f{tenant}\\x1f{kind}\\x1f{id}          -> tombstone (msgpack)
    s\\x1f{log_index:016x}                  -> msgpack list of the data keys that index wrote:
                                             the pipeline reads the log through these
"""

from __future__ import annotations

SEP = "\x1f"
APPLIED = b"m\x1fapplied"
PROBE = b"m\x1fprobe"  # only ever deleted: the storage probe's write changes no visible key
REJECTED_PREFIX = b"m\x1frejected\x1f"
SEQ_PREFIX = b"s\x1f"


def _key(*parts: str) -> bytes:
    return SEP.join(parts).encode()


def event(tenant: str, event_id: str) -> bytes:
    return _key("e", tenant, event_id)


def user_event(tenant: str, user_id: str, event_id: str) -> bytes:
    return _key("u", tenant, user_id, event_id)


def user_events_prefix(tenant: str, user_id: str) -> bytes:
    return _key("u", tenant, user_id, "")


def user_last_event(tenant: str, user_id: str) -> bytes:
    return _key("l", tenant, user_id)


def derived(kind: str, tenant: str, record_id: str) -> bytes:
    return _key("r", kind, tenant, record_id)


def derived_prefix(kind: str, tenant: str) -> bytes:
    return _key("r", kind, tenant, "")


def derived_kind_prefix(kind: str) -> bytes:
    """Every derived record of one kind, all tenants."""
    return _key("r", kind, "")


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key under ``prefix`` (an iterator's upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of 0xff bytes only has no end")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def access(tenant: str, record_id: str) -> bytes:
    """A memory's running retrieval count (an ``access`` total)."""
    return derived("access", tenant, record_id)


def user_derived(kind: str, tenant: str, user_id: str, record_id: str) -> bytes:
    return _key("x", kind, tenant, user_id, record_id)


def user_derived_prefix(kind: str, tenant: str, user_id: str) -> bytes:
    return _key("x", kind, tenant, user_id, "")


VERSION_BYTES = 8


def version(log_index: int) -> bytes:
    """A derived listing's value: the log index that last wrote the record (and a user's last
    event's)."""
    return log_index.to_bytes(VERSION_BYTES, "big")


USERS_PREFIX = b"u\x1f"
EVENTS_PREFIX = b"e\x1f"


def vector(tenant: str, record_id: str) -> bytes:
    return _key("v", tenant, record_id)


def tombstone(tenant: str, kind: str, record_id: str) -> bytes:
    return _key("t", tenant, kind, record_id)


def seq(log_index: int) -> bytes:
    return SEQ_PREFIX + f"{log_index:016x}".encode()


def rejected(log_index: int) -> bytes:
    return REJECTED_PREFIX + f"{log_index:016x}".encode()


def seq_index(key: bytes) -> int:
    return int(key[len(SEQ_PREFIX):], 16)


def record_key(record: dict) -> bytes:
    """The primary key of a record dict (as committed)."""
    kind = record["kind"]
    if kind == "event":
        return event(record["tenant"], record["event_id"])
    if kind == "vector":
        return vector(record["tenant"], record["record_id"])
    if kind == "tombstone":
        return tombstone(record["tenant"], record["target_kind"], record["target_id"])
    return derived(kind, record["tenant"], record["id"])


def target_key(tenant: str, kind: str, record_id: str) -> bytes:
    if kind == "event":
        return event(tenant, record_id)
    return derived(kind, tenant, record_id)


def kind_of(key: bytes) -> str:
    """The record kind a data key holds (inverse of ``record_key``)."""
    head = key[:2]
    if head == b"e\x1f":
        return "event"
    if head == b"v\x1f":
        return "vector"
    if head == b"t\x1f":
        return "tombstone"
    return key.split(b"\x1f", 2)[1].decode()
