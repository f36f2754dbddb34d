"""Membership changes at run time: add or remove a replica through the Raft log.

Members talk to each other only over the Raft port, whose traffic pysyncobj encrypts and
authenticates with the cluster secret.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from pysyncobj import FAIL_REASON, SyncObjException

from memorose_dagster.errors import InvalidInput, NotFound, Unavailable
from memorose_dagster.log.replicated import MemoryLog
from memorose_dagster.node.commits import commit, leader_address, reachable
from memorose_dagster.node.members import peer_call

log = logging.getLogger("memorose.membership")


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
