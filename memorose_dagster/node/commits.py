"""Commits through the Raft log that ride out a leader change, and what this node knows of
the leader and the quorum."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pysyncobj import FAIL_REASON, SyncObjException

from memorose_dagster.errors import CommitTimeout, Unavailable
from memorose_dagster.log.replicated import FAIL_REASONS, MemoryLog

log = logging.getLogger("memorose.commits")
T = TypeVar("T")

RETRY_PAUSE = 0.05
QUORUM_GRACE = 1.0  # a reconnect between live members takes a tick or two; wait that long
# The command never reached a log, or lost its slot: it cannot have been committed.
NOT_COMMITTED = {FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER, FAIL_REASON.QUEUE_FULL,
                 FAIL_REASON.DISCARDED}
# The leader went away after the command was sent: it may or may not commit.
AMBIGUOUS = {FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME}
# An event's id is new and known to no one until its ingest is acknowledged: committing it
# twice stores the same thing and cannot undo a change made in between (a derived record could
# be re-created over its tombstone; the pipeline retries those by rerunning, with stable ids).
RETRY_SAFE_KINDS = {"event"}


def retry_safe(records: Iterable[dict[str, Any]]) -> bool:
    return all(record.get("kind") in RETRY_SAFE_KINDS for record in records)


def leader_address(raft: MemoryLog) -> str | None:
    """The leader this node is in touch with (a dead leader is not reported)."""
    leader = raft.leader_node()
    if leader is None or (leader != raft.selfNode and not raft.isNodeConnected(leader)):
        return None
    return leader.address


def reachable(raft: MemoryLog) -> tuple[int, int]:
    others = raft.otherNodes
    return 1 + sum(raft.isNodeConnected(n) for n in others), 1 + len(others)


def _require_quorum(raft: MemoryLog, deadline: float) -> None:
    grace = min(deadline, time.monotonic() + QUORUM_GRACE)
    while not raft.hasQuorum:
        if time.monotonic() >= grace:
            up, total = reachable(raft)
            raise Unavailable(f"no quorum: this node reaches {up} of {total} members; writes "
                              "are refused until a majority is back", leader=None)
        time.sleep(RETRY_PAUSE)


def commit(raft: MemoryLog, attempt: Callable[[float], T], timeout: float,
           retry_ambiguous: bool, retry_also: frozenset[int] = frozenset()) -> T:
    """Commit one command through ``attempt(seconds_left)``, riding out a leader change.

    A command that cannot have been committed is retried until ``timeout``; one whose fate is
    unknown only when committing it twice is harmless (``retry_ambiguous``).
    """
    deadline = time.monotonic() + timeout
    while True:
        _require_quorum(raft, deadline)
        try:
            return attempt(max(deadline - time.monotonic(), 0.01))
        except SyncObjException as exc:
            code = exc.errorCode
            if code == "Timeout":
                raise CommitTimeout(f"command not committed within {timeout:.0f}s",
                                    leader=leader_address(raft)) from exc
            retry = (code in NOT_COMMITTED or code in retry_also
                     or (retry_ambiguous and code in AMBIGUOUS))
            if not retry or time.monotonic() + RETRY_PAUSE >= deadline:
                reason = FAIL_REASONS.get(code, f"raft error {code}")
                raise Unavailable(f"cannot commit: {reason}", leader=leader_address(raft)) from exc
            log.debug("retrying a command after %s", FAIL_REASONS.get(code, code))
            time.sleep(RETRY_PAUSE)


def raft_status(raft: MemoryLog) -> dict[str, Any]:
    """pysyncobj's status, read outside its tick thread."""
    for _ in range(10):
        try:
            return raft.getStatus()
        except RuntimeError:  # a set changed size under the tick thread: read again
            time.sleep(0.001)
    return raft.getStatus()
