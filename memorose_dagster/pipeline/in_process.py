"""A ``ClusterResource`` over a node in this process: the pipeline's reads and commits go to the
same ``Node`` methods the admin routes call, without uvicorn, HTTP or Raft peers. Asset and
sensor logic can then be tested with ``build_asset_context`` or ``dg.materialize`` in
milliseconds, on real RocksDB, Tantivy and LanceDB.

Only tests and embedded tools import this module: it loads the storage engines, which the Dagster
code location (``assets/``, ``sensors/``, ``definitions``) never does.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from memorose_client.errors import MemoroseAPIError
from memorose_dagster.node.node import Node
from memorose_dagster.pipeline.resources import ClusterResource

# Dagster may rebuild a resource from its config: the node is found by key, not held.
_NODES: dict[str, Node] = {}


class NodeClient:
    """The pipeline part of ``MemoroseClient``, answered by a ``Node`` directly."""

    def __init__(self, node: Node):
        self._node = node

    def read_log(self, after: int, limit: int = 500, kinds: list[str] | None = None,
                 until: int | None = None) -> dict[str, Any]:
        return self._node.read_log(after, limit, set(kinds) if kinds else None, until)

    def log_counts(self, after: int, until: int | None = None, limit: int = 10_000,
                   kinds: list[str] | None = None) -> dict[str, Any]:
        return self._node.log_counts(after, limit, set(kinds) if kinds else None, until)

    def events_between(self, start_ms: int, end_ms: int, limit: int = 2000,
                       after: dict[str, str] | None = None) -> dict[str, Any]:
        cursor = (after["after_tenant"], after["after_id"]) if after else None
        events, more = self._node.events_between(start_ms, end_ms, limit, cursor)
        return {"events": events,
                "next": {"after_tenant": more[0], "after_id": more[1]} if more else None}

    def users(self) -> list[tuple[str, str]]:
        return self._node.users()

    def last_events(self, users: list[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        return dict(zip(users, self._node.last_events(users), strict=True))

    def list_records(self, kind: str, user_id: str, tenant: str = "default",
                     streams: set[str] | None = None) -> list[dict[str, Any]]:
        return self._node.user_records(kind, tenant, user_id, streams)

    def l1_candidates(self, user_id: str, tenant: str, contents: list[str], ids: list[str],
                      event_ids: list[str]) -> list[dict[str, Any]]:
        return self._node.l1_candidates(tenant, user_id, contents, ids, event_ids)

    def derivations(self, kind: str = "l1") -> dict[str, dict[str, int]]:
        return self._node.derivations(kind)

    def commit(self, records: list[dict[str, Any]]) -> int:
        return self._node.commit_derived(records)

    def acquire_lease(self, owner: str, users: list[tuple[str, str]],
                      ttl_seconds: float = 120.0) -> dict[str, Any]:
        busy = self._node.leases.acquire(owner, users, ttl_seconds)
        if busy:  # what the route answers, as the HTTP client raises it
            raise MemoroseAPIError(409, "lease_held", f"{len(busy)} users are leased to another "
                                   "step", {"error": {"code": "lease_held"}})
        return {"owner": owner, "users": len(set(users)), "ttl_seconds": ttl_seconds}

    def release_lease(self, owner: str) -> int:
        return self._node.leases.release(owner)

    def close(self) -> None:
        """The node belongs to whoever started it."""


class InProcessClusterResource(ClusterResource):
    """``ClusterResource`` reading and committing through a ``Node`` in this process."""

    node_key: str = ""

    @classmethod
    def for_node(cls, node: Node) -> InProcessClusterResource:
        key = f"node-{id(node)}"
        _NODES[key] = node
        return cls(node_key=key)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Nothing to open: the node is already running."""

    @property
    def client(self) -> NodeClient:  # type: ignore[override]
        return NodeClient(_NODES[self.node_key])
