"""Operations on a whole replica: consistent-read barriers, snapshots on demand and digests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from memorose_dagster.errors import CommitTimeout, Unavailable
from memorose_dagster.log.replicated import MemoryLog
from memorose_dagster.log.store import Store
from memorose_dagster.node.commits import commit, leader_address, raft_status
from memorose_dagster.node.indexer import Indexer


def read_barrier(raft: MemoryLog, store: Store, indexer: Indexer, timeout: float) -> int:
    """Wait until this node reflects every write acknowledged (by any member) before the call.

    A no-op goes through the log; once it is applied here, so is everything committed before
    it, and the indexes are then awaited up to the store's applied index. Returns that index.
    """
    deadline = time.monotonic() + timeout
    try:
        commit(raft, lambda left: raft.barrier(sync=True, timeout=left), timeout,
               retry_ambiguous=True)
    except CommitTimeout as exc:
        raise Unavailable(f"consistent read: {exc.message}", leader=leader_address(raft)
                          ) from exc
    target = store.applied_index
    if not indexer.wait_for(target, max(deadline - time.monotonic(), 0.0)):
        raise Unavailable(f"consistent read: log index {target} not yet indexed here")
    return target


def snapshot(raft: MemoryLog, timeout: float) -> dict[str, Any]:
    """Write a snapshot now and compact the Raft log; wait until both happened. A snapshot that
    already holds everything applied is current: pysyncobj writes none, so none is awaited."""
    path = Path(raft.conf.fullDumpFile)
    status = raft_status(raft)
    if path.exists() and raft.snapshot_index >= status["last_applied"]:
        return _snapshot_report(path, False, status)
    before = path.stat().st_mtime_ns if path.exists() else None
    raft.forceLogCompaction()
    deadline = time.monotonic() + timeout
    written = compacted = False
    # The dump is written in one tick and the journal cut at the next one; a journal of the
    # snapshot's own entries (two) has nothing left to cut.
    while time.monotonic() < deadline and not (written and compacted):
        time.sleep(0.05)
        written = path.exists() and path.stat().st_mtime_ns != before
        log_len = raft_status(raft)["log_len"]
        compacted = log_len < status["log_len"] or log_len <= 2
    return _snapshot_report(path, written, raft_status(raft))


def _snapshot_report(path: Path, written: bool, status: dict[str, Any]) -> dict[str, Any]:
    return {"written": written, "snapshot_bytes": path.stat().st_size if path.exists() else 0,
            "log_len": status["log_len"], "applied_index": status["last_applied"]}


def wait_caught_up(raft: MemoryLog, timeout: float) -> dict[str, Any]:
    """Wait until this node has applied everything the leader told it is committed."""
    deadline = time.monotonic() + timeout
    while True:
        status = raft_status(raft)
        leader_commit = status["leader_commit_idx"]
        if (leader_commit is not None and status["last_applied"] >= status["commit_idx"]
                >= leader_commit):
            return status
        if time.monotonic() >= deadline:
            raise Unavailable(f"not caught up within {timeout:.0f}s: applied "
                              f"{status['last_applied']}, leader commit {leader_commit}",
                              leader=leader_address(raft))
        time.sleep(0.05)


def digest(raft: MemoryLog, store: Store, timeout: float) -> dict[str, Any]:
    """SHA-256 of the replica's RocksDB once it applied all the leader committed."""
    deadline = time.monotonic() + timeout
    while True:
        status = wait_caught_up(raft, max(deadline - time.monotonic(), 0.1))
        applied = store.applied_index
        value = store.digest()
        if store.applied_index == applied:  # no write landed while hashing
            return {"digest": value, "applied_index": applied,
                    "raft_applied_index": status["last_applied"],
                    "commit_index": status["commit_idx"]}
        if time.monotonic() > deadline:
            raise Unavailable("writes kept landing while hashing: stop them for a digest")
