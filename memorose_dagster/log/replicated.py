"""pysyncobj glue: the Raft group whose one replicated command applies a batch of records.

A standalone node is a one-member group on the same code path as a cluster. Snapshots are
RocksDB checkpoints tarred with the two Raft entries pysyncobj needs, written by our serializer
hooks, so log compaction works and a lagging or new replica installs the whole state at once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.monotonic import monotonic
from pysyncobj.node import TCPNode
from pysyncobj.syncobj import _RAFT_STATE

from memorose_dagster.log.faults import FaultFile, FaultState, StorageFault
from memorose_dagster.log.journal import GuardedJournal
from memorose_dagster.log.peer_guard import MAX_FRAME_BYTES, GuardedTransport
from memorose_dagster.log.store import Outcome, Store
from memorose_dagster.records import pack, unpack

log = logging.getLogger("memorose.raft")

AppliedCallback = Callable[[int, Outcome], None]

ROLES = {_RAFT_STATE.FOLLOWER: "follower", _RAFT_STATE.CANDIDATE: "candidate",
         _RAFT_STATE.LEADER: "leader"}
# pysyncobj keeps every journal entry in memory until a snapshot compacts the log: snapshot after
# this many entries, or this many payload bytes (whichever comes first), or every 10 minutes.
COMPACT_ENTRIES = 5000
COMPACT_BYTES = 64 * 1024 * 1024
STARTUP_GRACE = 2.5  # seconds
SNAPSHOT_RETRY = 30.0  # seconds between snapshot attempts after one failed (a full disk)

FAIL_REASONS = {
    FAIL_REASON.QUEUE_FULL: "commit queue full",
    FAIL_REASON.MISSING_LEADER: "no leader (no quorum?)",
    FAIL_REASON.DISCARDED: "command discarded by a leader change",
    FAIL_REASON.NOT_LEADER: "not the leader",
    FAIL_REASON.LEADER_CHANGED: "leader changed before commit",
    FAIL_REASON.REQUEST_DENIED: "request denied",
    FAIL_REASON.UNKNOWN_OUTCOME: "outcome unknown (leader changed)",
}


class MemoryLog(SyncObj):
    """The replicated state machine: RocksDB changes only through ``apply_batch``."""

    def __init__(self, self_address: str, peers: list[str], store: Store, raft_dir: Path,
                 password: str, on_applied: AppliedCallback,
                 on_snapshot_installed: Callable[[], None],
                 extra_status: Callable[[], dict[str, Any]] | None = None,
                 bind_address: str | None = None, max_frame_bytes: int = MAX_FRAME_BYTES,
                 faults: FaultState | None = None, fault_file: FaultFile | None = None,
                 **conf: Any):
        # Set before SyncObj.__init__: its tick thread may start applying the journal at once.
        self._store = store
        self.faults = faults or FaultState()
        self._snapshot_failed_at: float | None = None
        self._on_applied = on_applied
        self._on_snapshot_installed = on_snapshot_installed
        self._extra_status = extra_status
        self._bytes_since_snapshot = 0
        self._seen_leader: str | None = None
        self._snapshot = SERIALIZER_STATE.NOT_SERIALIZING
        self._snapshot_writer: threading.Thread | None = None
        self._dump_lock = threading.Lock()
        self.snapshot_index = 0  # the log index the newest snapshot on disk holds
        raft_dir.mkdir(parents=True, exist_ok=True)
        for leftover in raft_dir.glob(".snapshot-*"):  # a writer's, cut short by a crash
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in raft_dir.glob("*.writing"):
            leftover.unlink()
        settings = dict(
            password=password,
            # pysyncobj's default is every interface (0.0.0.0) on the port of self_address.
            bindAddress=bind_address or self_address,
            journalFile=str(raft_dir / "journal"),
            fullDumpFile=str(raft_dir / "snapshot.tar"),
            serializer=self._serialize,
            deserializer=self._deserialize,
            serializeChecker=self._snapshot_state,
            appendEntriesUseBatch=False,  # ~1 ms per blocking call instead of ~100 ms
            # A one-member group commits in the tick: at the default 50 ms tick every ack waited
            # ~50 ms (measured 51 ms per blocking call; 5.6 ms at 5 ms, for ~1% of a core idle).
            autoTickPeriod=0.005,
            appendEntriesBatchSizeBytes=2**20,
            dynamicMembershipChange=True,
            logCompactionMinEntries=COMPACT_ENTRIES,
            logCompactionMinTime=600,
            logCompactionBatchSize=2**20,  # snapshot bytes per message to a lagging replica
            leaderFallbackTimeout=5.0,  # a leader cut off from the majority steps down
            connectionRetryTime=1.0,  # reconnect to a restarted member within a second
            onStateChanged=self._on_state_changed,
        )
        settings.update(conf)
        super().__init__(self_address, peers, SyncObjConf(**settings),
                         transportClass=functools.partial(GuardedTransport,
                                                          max_frame=max_frame_bytes))
        self._journal = GuardedJournal.guard(self._SyncObj__raftLog, fault_file or FaultFile(None))
        self._guard_incoming_snapshots()
        self.addOnTickCallback(self._on_tick)
        if peers:
            # pysyncobj has no Pre-Vote: a member that restarts and reaches some peer before
            # the leader reaches it would call an election and depose a healthy leader. Hold
            # its first election until the leader (reconnecting every second) has found it.
            self._SyncObj__raftElectionDeadline = monotonic() + STARTUP_GRACE

    @replicated
    def apply_batch(self, payload: bytes) -> dict[str, Any]:
        # Runs on every replica in commit order: deterministic, no clock, randomness or network.
        # pysyncobj applies entry N while raftLastApplied == N - 1. Returns the same on every
        # replica: the log index, why the command was skipped ("" if applied) and which of its
        # events clashed with stored ones. The store decodes the payload: bad bytes never raise.
        log_index = self.raftLastApplied + 1
        outcome = self._store.apply_payload(payload, log_index)
        result = {"log_index": log_index, "rejected": "", "clashes": []}
        if outcome is not None:
            self._on_applied(log_index, outcome)
            result.update(rejected=outcome.rejected, clashes=list(outcome.clashes))
        self._bytes_since_snapshot += len(payload)
        if self._bytes_since_snapshot > COMPACT_BYTES:  # local journal only, not replicated state
            self._bytes_since_snapshot = 0
            self.forceLogCompaction()
        return result

    def leader_node(self) -> TCPNode | None:
        """The leader this member follows (itself when leading), or None during an election."""
        return self._getLeader()

    @replicated
    def barrier(self) -> int:
        # A no-op through the log for consistent reads: once it is applied here, so is every
        # write acknowledged before it was submitted. Changes no state.
        return self.raftLastApplied + 1


    def getStatus(self) -> dict[str, Any]:
        # Also what a peer's 'status' request over the Raft port returns (cluster status).
        status = super().getStatus()
        if self._extra_status is not None:
            status["memorose"] = self._extra_status()
        return status

    def _onTick(self, timeToWait: float = 0.0) -> None:  # noqa: N802, N803
        """pysyncobj's tick, with storage faults handled here rather than by its tick loop
        (which logs a traceback and ticks again 5 ms later: a line per tick while a disk is
        full). While a fault lasts this member still polls its peers, so as a follower it keeps
        its journal in step and answers votes; it neither leads nor calls elections, so a
        healthy member leads. Every retry (0.1 s, doubling to 1 s) probes the disk and then runs
        a whole tick, whose apply resumes at the first unapplied entry."""
        if self.faults.active is not None:
            if self.otherNodes:  # let a healthy member win the next election
                self._SyncObj__raftElectionDeadline = monotonic() + 1.0
            if not self.faults.due():
                self._idle(timeToWait)
                return
        try:
            if self.faults.active is not None:
                self._journal.probe()
                self._store.probe()
            super()._onTick(timeToWait)
        except StorageFault as fault:
            self.faults.failed(fault)
            self._step_down()
            return
        self.faults.cleared()

    def _idle(self, timeout: float) -> None:
        """A tick while a storage fault lasts: talk to the peers, pass commands on, apply
        nothing."""
        try:
            if self._getLeader() != self.selfNode:  # forwards, or answers "not the leader"
                self._checkCommandsToApply()
            self._poller.poll(timeout)
        except StorageFault as fault:  # an entry from the leader did not fit in the journal
            self.faults.failed(fault)

    def _step_down(self) -> None:
        """A leader that cannot apply stops leading: it asks the most caught-up follower to
        call an election now (Raft's TimeoutNow, if one is caught up) and becomes a follower;
        without its heartbeats the others elect a leader within an election timeout anyway."""
        if self._getLeader() != self.selfNode or not self.otherNodes:
            return
        log.warning("stepping down as leader: this node cannot apply committed entries")
        self.transferLeadership()
        self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
        self._SyncObj__raftLeader = None

    def _on_tick(self) -> None:
        leader = self._getLeader()
        address = leader.address if leader is not None else None
        if address != self._seen_leader:
            self._seen_leader = address
            log.info("raft leader is now %s (term %d)", address or "unknown", self.raftCurrentTerm)

    def _on_state_changed(self, old: int, new: int) -> None:
        log.info("raft state %s -> %s", ROLES.get(old, old), ROLES.get(new, new))


    def _serialize(self, filename: str, raft_data: tuple) -> None:
        """Take the snapshot here, write it elsewhere. The checkpoint (hard links, ~20 ms) is
        taken in the tick thread, where nothing is being applied, so it is exactly the state at
        ``last``; the tar of it (seconds for a large store) is written by a background thread,
        so heartbeats and commits go on. pysyncobj moves ``filename`` over the dump as soon as
        this returns: it is a link to the current dump, so that move changes nothing until the
        writer replaces the dump with the new snapshot. ``_snapshot_state`` tells pysyncobj when
        that is done; only then does it drop the log entries the snapshot covers."""
        last, prev, cluster = raft_data
        meta = pack({"last": list(last), "prev": list(prev),
                     "cluster": sorted(node.address for node in cluster)})
        dump = Path(filename).with_suffix("")  # pysyncobj writes "<dump>.tmp"
        work = Path(tempfile.mkdtemp(dir=dump.parent, prefix=".snapshot-"))
        try:
            self._store.checkpoint(work / "db")
            if not dump.exists():  # the first one: nothing to stand in for it, so write it now
                write_snapshot(Path(filename), meta, work / "db")
                shutil.rmtree(work, ignore_errors=True)
                self._snapshot_done(SERIALIZER_STATE.SUCCESS, last[1])
                return
            Path(filename).unlink(missing_ok=True)
            os.link(dump, filename)
            standing = os.stat(dump).st_ino
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)
            log.error("taking the snapshot at log index %d failed: %s", last[1], exc)
            self._snapshot_done(SERIALIZER_STATE.FAILED, last[1])
            raise
        self._snapshot = SERIALIZER_STATE.SERIALIZING
        self._snapshot_writer = threading.Thread(
            target=self._write_in_background,
            args=(dump, Path(filename), meta, work, standing, last[1]),
            name="memorose-snapshot", daemon=True)
        self._snapshot_writer.start()

    def _write_in_background(self, dump: Path, stand_in: Path, meta: bytes, work: Path,
                             standing: int, index: int) -> None:
        writing = dump.with_name(dump.name + ".writing")
        state = SERIALIZER_STATE.FAILED
        try:
            write_snapshot(writing, meta, work / "db")
            with self._dump_lock:
                # A snapshot installed from the leader meanwhile replaced the dump: it is newer.
                if os.stat(dump).st_ino == standing:
                    os.replace(writing, dump)
                    state = SERIALIZER_STATE.SUCCESS
        except OSError as exc:  # a full disk: one line, not a traceback per attempt
            log.error("writing the snapshot at log index %d failed: %s", index, exc)
        except Exception:
            log.exception("writing the snapshot at log index %d failed", index)
        finally:
            writing.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):  # renaming a link over itself left it
                if os.stat(stand_in).st_ino == standing:
                    stand_in.unlink()
            self._snapshot_done(state, index)

    def _snapshot_done(self, state: int, index: int) -> None:
        if state == SERIALIZER_STATE.SUCCESS:
            self.snapshot_index = max(self.snapshot_index, index)
            log.info("snapshot written at log index %d", index)
        else:
            self._snapshot_failed_at = monotonic()
        self._snapshot = state

    def _snapshot_state(self) -> int:
        """pysyncobj's serializeChecker: SERIALIZING while the writer runs, then SUCCESS (or
        FAILED) once, then NOT_SERIALIZING. A failure is reported only SNAPSHOT_RETRY seconds
        after it happened: pysyncobj tries again on the next tick, and on a full disk each try
        wrote a copy of the store until the disk filled again."""
        state = self._snapshot
        failed_at = self._snapshot_failed_at
        if state == SERIALIZER_STATE.FAILED and failed_at is not None \
                and monotonic() - failed_at < SNAPSHOT_RETRY:
            return SERIALIZER_STATE.SERIALIZING
        if state in (SERIALIZER_STATE.SUCCESS, SERIALIZER_STATE.FAILED):
            self._snapshot = SERIALIZER_STATE.NOT_SERIALIZING
        return state

    def _guard_incoming_snapshots(self) -> None:
        """pysyncobj moves a snapshot received from the leader over the dump from its own code;
        hold the dump lock around that, so the writer never puts an older snapshot over it."""
        serializer = self._SyncObj__serializer
        receive = serializer.setTransmissionData

        def guarded(data: Any) -> bool:
            with self._dump_lock:
                return receive(data)

        serializer.setTransmissionData = guarded

    def wait_snapshot_written(self, timeout: float = 60.0) -> None:
        writer = self._snapshot_writer
        if writer is not None:
            writer.join(timeout)

    def _deserialize(self, filename: str) -> tuple:
        with tarfile.open(filename, "r") as tar:
            meta = unpack(tar.extractfile("raft.msgpack").read())
            snapshot_index = meta["last"][1]
            self.snapshot_index = max(self.snapshot_index, snapshot_index)
            if snapshot_index > self._store.applied_index:
                with tempfile.TemporaryDirectory(dir=Path(filename).parent) as tmp:
                    tar.extractall(tmp, filter="data")
                    self._store.replace_with(Path(tmp) / "db")
                log.info("installed snapshot at log index %d", snapshot_index)
                self._on_snapshot_installed()
        cluster = {TCPNode(address) for address in meta["cluster"]}
        return tuple(meta["last"]), tuple(meta["prev"]), cluster


def write_snapshot(path: Path, meta: bytes, checkpoint: Path) -> None:
    """The snapshot file: the Raft entries pysyncobj needs and a RocksDB checkpoint, one tar."""
    with open(path, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo("raft.msgpack")
            info.size = len(meta)
            tar.addfile(info, io.BytesIO(meta))
            tar.add(checkpoint, arcname="db")
        raw.flush()
        os.fsync(raw.fileno())
