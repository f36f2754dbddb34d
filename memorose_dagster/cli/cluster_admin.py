"""``memorose cluster status|add|remove``: membership and status over a node's HTTP API."""

from __future__ import annotations

import json
import sys

from memorose_dagster.cli.admin_http import admin_request


def cluster_admin(action: str, urls: str, address: str) -> int:
    """``cluster status|add|remove`` over HTTP, trying each URL until one answers."""
    method, path, body = {
        "status": ("GET", "/api/v1/cluster/status", None),
        "add": ("POST", "/api/v1/admin/cluster/members", {"address": address}),
        "remove": ("DELETE", f"/api/v1/admin/cluster/members/{address}",
                   None)}[action]
    response, failures = admin_request(method, path, body, urls)
    if response is None:
        print("no node could answer:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    data = response.json()
    print(_members_table(data) if action == "status" and response.is_success
          else json.dumps(data, indent=2))
    return 0 if response.is_success else 1


def _members_table(status: dict) -> str:
    columns = ("node_id", "raft_address", "url", "role", "term", "commit_index",
               "applied_index", "lag", "reachable", "age_s")
    rows = [columns] + [tuple(str(m.get(c, "")) for c in columns) for m in status["members"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                     for row in rows)
