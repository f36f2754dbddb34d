"""Cluster operations of a node: commits that ride out a leader change, consistent reads,
membership changes, and every member's status.

Members talk to each other only over the Raft port, whose traffic pysyncobj encrypts and
authenticates with the cluster secret. Status comes from pysyncobj's own ``status`` request on
that port, so a node can report on every member without knowing their HTTP addresses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pysyncobj import FAIL_REASON, SyncObjException
from pysyncobj.node import TCPNode
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection

from memorose_dagster.errors import CommitTimeout, InvalidInput, NotFound, Unavailable
from memorose_dagster.log.replicated import FAIL_REASONS, ROLES, MemoryLog

if TYPE_CHECKING:
    from memorose_dagster.node import Node

log = logging.getLogger("memorose.cluster")

RETRY_PAUSE = 0.05
QUORUM_GRACE = 1.0  # a reconnect between live members takes a tick or two; wait that long
STATUS_INTERVAL = 0.5  # seconds between polls of the other members
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
    leader = raft._getLeader()
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


def commit(raft: MemoryLog, attempt: Callable[[float], int], timeout: float,
           retry_ambiguous: bool, retry_also: frozenset[int] = frozenset()) -> int:
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


def read_barrier(node: Node, timeout: float) -> int:
    """Wait until this node reflects every write acknowledged (by any member) before the call.

    A no-op goes through the log; once it is applied here, so is everything committed before
    it, and the indexes are then awaited up to the store's applied index. Returns that index.
    """
    deadline = time.monotonic() + timeout
    try:
        commit(node.log, lambda left: node.log.barrier(sync=True, timeout=left), timeout,
               retry_ambiguous=True)
    except CommitTimeout as exc:
        raise Unavailable(f"consistent read: {exc.message}", leader=leader_address(node.log)
                          ) from exc
    target = node.store.applied_index
    if not node.indexer.wait_for(target, max(deadline - time.monotonic(), 0.0)):
        raise Unavailable(f"consistent read: log index {target} not yet indexed here")
    return target


def raft_status(raft: MemoryLog) -> dict[str, Any]:
    """pysyncobj's status, read outside its tick thread."""
    for _ in range(10):
        try:
            return raft.getStatus()
        except RuntimeError:  # a set changed size under the tick thread: read again
            time.sleep(0.001)
    return raft.getStatus()


# -- membership -----------------------------------------------------------------------------


def _check_address(address: str) -> str:
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"address must be host:raft_port, got {address!r}", field="address")
    return f"{host}:{int(port)}"


def member_addresses(raft: MemoryLog) -> list[str]:
    return sorted([raft.selfNode.address] + [n.address for n in raft.otherNodes])


def add_member(raft: MemoryLog, address: str, timeout: float) -> list[str]:
    """Add a replica at runtime (Raft address). Start it with ``--peers`` = the members."""
    address = _check_address(address)
    if address in member_addresses(raft):
        raise InvalidInput(f"{address} is already a member", field="address")
    up, total = reachable(raft)
    up += _answers(raft, address)
    if up < (total + 1) // 2 + 1:  # the change itself must commit in the new configuration
        raise Unavailable(f"adding {address} would leave {up} of {total + 1} members reachable, "
                          "no majority: start it first (--peers = the current members)")
    _change(raft, lambda cb: raft.addNodeToCluster(address, callback=cb),
            lambda: address in member_addresses(raft), timeout)
    log.info("member %s added", address)
    return member_addresses(raft)


def _answers(raft: MemoryLog, address: str) -> bool:
    try:
        peer_call(address, ["status"], raft.encryptor, timeout=1.0)
        return True
    except OSError:
        return False


def remove_member(raft: MemoryLog, address: str, timeout: float) -> list[str]:
    """Remove a replica at runtime; a leader hands its leadership over first."""
    address = _check_address(address)
    if address not in member_addresses(raft):
        raise NotFound(f"{address} is not a member", field="address")
    if address == raft.selfNode.address:  # it would never hear that its removal committed
        raise InvalidInput("a node cannot remove itself: send this to another member",
                           field="address")
    deadline = time.monotonic() + timeout
    while leader_address(raft) in (address, None):  # pysyncobj's leader cannot remove itself
        if time.monotonic() > deadline:
            raise Unavailable(f"{address} is the leader and did not hand leadership over")
        if leader_address(raft) == address:
            with contextlib.suppress(OSError):  # if it is down, an election follows anyway
                peer_call(address, ["transfer", ""], raft.encryptor, timeout=1.0)
        time.sleep(0.5)
    _change(raft, lambda cb: raft.removeNodeFromCluster(address, callback=cb),
            lambda: address not in member_addresses(raft), max(deadline - time.monotonic(), 1.0))
    log.info("member %s removed", address)
    return member_addresses(raft)


def _change(raft: MemoryLog, request: Callable[[Callable], None], done: Callable[[], bool],
            timeout: float) -> None:
    def attempt(left: float) -> int:
        if done():  # an earlier attempt whose answer was lost to a leader change went through
            return 0
        finished, outcome = threading.Event(), {}

        def callback(_result: object, error: int) -> None:
            outcome["error"] = error
            finished.set()

        request(callback)
        if not finished.wait(left):
            raise SyncObjException("Timeout")
        if outcome["error"] != FAIL_REASON.SUCCESS:
            raise SyncObjException(outcome["error"])
        return 0

    # pysyncobj denies a change while the previous one (or a new leader's no-op) is uncommitted.
    commit(raft, attempt, timeout, retry_ambiguous=True,
           retry_also=frozenset({FAIL_REASON.REQUEST_DENIED}))


# -- status ---------------------------------------------------------------------------------


def peer_call(address: str, command: list, encryptor: Any, timeout: float) -> Any:
    """One pysyncobj utility request (``status``, ``transfer``) over a member's Raft port."""
    poller = createPoller("auto")
    conn = TcpConnection(poller, timeout=timeout)
    conn.encryptor = encryptor
    answer: dict[str, Any] = {}

    def on_connected() -> None:
        if encryptor is None:
            conn.send(command)
            return
        conn.recvRandKey = os.urandom(32)  # pysyncobj's key exchange, then the request
        conn.send(conn.recvRandKey)

    def on_message(message: Any) -> None:
        if encryptor is not None and not conn.sendRandKey:
            conn.sendRandKey = message
            conn.send(command)
            return
        answer["value"] = message
        conn.disconnect()

    conn.setOnConnectedCallback(on_connected)
    conn.setOnMessageReceivedCallback(on_message)
    node = TCPNode(address)
    deadline = time.monotonic() + timeout
    if conn.connect(node.ip, node.port):
        while conn.state != CONNECTION_STATE.DISCONNECTED and time.monotonic() < deadline:
            poller.poll(0.05)
    conn.disconnect()
    if "value" not in answer:
        raise ConnectionError(f"no answer from {address}")
    return answer["value"]


def member_status(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of a pysyncobj status (with our ``memorose`` part) that status reports."""
    extra = raw.get("memorose", {})
    leader = raw.get("leader")
    return {"raft_address": raw["self"].address, "node_id": extra.get("node_id"),
            "url": extra.get("url"), "role": ROLES.get(raw["state"], str(raw["state"])),
            "leader": getattr(leader, "address", None), "term": raw["raft_term"],
            "commit_index": raw["commit_idx"], "applied_index": raw["last_applied"],
            "store_applied_index": extra.get("applied_index"),
            "indexed_index": extra.get("indexed_index"), "log_len": raw["log_len"]}


class ClusterView:
    """Every member's status, refreshed in the background over the Raft port."""

    def __init__(self, raft: MemoryLog, interval: float = STATUS_INTERVAL):
        self._raft = raft
        self._interval = interval
        self._seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memorose-cluster-view",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for node in self._raft.otherNodes:
                try:
                    seen = member_status(peer_call(node.address, ["status"],
                                                   self._raft.encryptor, timeout=1.0))
                except (OSError, KeyError, AttributeError, TypeError):
                    seen = None  # down, unreachable, or not speaking our protocol
                self._seen[node.address] = (time.monotonic(), seen)

    def members(self) -> list[dict[str, Any]]:
        """One entry per member: this node live, the others as last polled, with lag."""
        raft = self._raft
        out = [{**member_status(raft_status(raft)), "reachable": True, "age_s": 0.0}]
        now = time.monotonic()
        for node in sorted(raft.otherNodes, key=lambda n: n.address):
            when, seen = self._seen.get(node.address, (None, None))
            entry = seen or {"raft_address": node.address}
            out.append({**entry, "reachable": seen is not None,
                        "connected": raft.isNodeConnected(node),
                        "age_s": None if when is None else round(now - when, 2)})
        commits = [m["commit_index"] for m in out if m.get("role") == "leader"]
        for member in out:
            applied = member.get("applied_index")
            member["lag"] = max(commits) - applied if commits and applied is not None else None
        return out
