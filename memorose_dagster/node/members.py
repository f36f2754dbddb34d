"""Every member's status, read over the Raft port with pysyncobj's own ``status`` request, so
a node can report on every member without knowing their HTTP addresses."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from pysyncobj.node import TCPNode
from pysyncobj.poller import createPoller
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection

from memorose_dagster.log.replicated import ROLES, MemoryLog
from memorose_dagster.node.commits import raft_status

STATUS_INTERVAL = 0.5  # seconds between polls of the other members


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
            "indexed_index": extra.get("indexed_index"), "log_len": raw["log_len"],
            "status": extra.get("status"), "reason": extra.get("reason")}


class MemberView:
    """Every member's status, refreshed in the background over the Raft port."""

    def __init__(self, raft: MemoryLog, interval: float = STATUS_INTERVAL):
        self._raft = raft
        self._interval = interval
        self._seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memorose-member-view",
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
