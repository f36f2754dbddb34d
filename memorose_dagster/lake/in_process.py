"""The lake's reads answered by a ``Node`` in this process (tests and embedded tools only: it
loads the storage engines)."""

from __future__ import annotations

from typing import Any

from memorose_dagster.node.node import Node
from memorose_dagster.pipeline.in_process import InProcessClusterResource, NodeClient

_NODES: dict[str, Node] = {}


class LakeNodeClient(NodeClient):
    """``NodeClient`` plus the lake and census reads of ``MemoroseClient``."""

    def __init__(self, node: Node):
        super().__init__(node)
        self.node = node

    def lake_records(self, kind: str, days: list[str] | None = None, tenant: str | None = None,
                     after: str | None = None, limit: int = 2000,
                     values: bool = False) -> dict[str, Any]:
        records, more = self.node.lake_records(kind, set(days) if days else None, tenant,
                                               bytes.fromhex(after) if after else None, limit,
                                               values)
        return {"records": records, "next": more.hex() if more is not None else None}

    def lake_touched(self, after: int, until: int | None = None,
                     limit: int = 2000) -> dict[str, Any]:
        return self.node.lake_touched(after, until, limit)

    def lake_rows(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
        return self.node.lake_rows(tenant, ids)

    def index_census(self) -> list[dict[str, Any]]:
        return [self.node.index_census()]


class InProcessLakeCluster(InProcessClusterResource):
    """``InProcessClusterResource`` whose client also answers the lake's reads."""

    @classmethod
    def for_node(cls, node: Node) -> InProcessLakeCluster:
        resource = super().for_node(node)
        _NODES[resource.node_key] = node
        return resource  # type: ignore[return-value]

    @property
    def client(self) -> LakeNodeClient:  # type: ignore[override]
        return LakeNodeClient(_NODES[self.node_key])
