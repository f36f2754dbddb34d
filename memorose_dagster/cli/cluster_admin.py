"""``memorose cluster status|add|remove``: membership and status over a node's HTTP API."""

from __future__ import annotations

import json
import os
import sys

import httpx


def cluster_admin(action: str, urls: str, address: str) -> int:
    """``cluster status|add|remove`` over HTTP, trying each URL until one answers."""
    key = os.environ.get("MEMOROSE_ADMIN_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    method, path, body = {
        "status": ("GET", "/api/v1/cluster/status", None),
        "add": ("POST", "/api/v1/admin/cluster/members", {"address": address}),
        "remove": ("DELETE", f"/api/v1/admin/cluster/members/{address}",
                   None)}[action]
    failures = []
    for url in filter(None, (u.strip().rstrip("/") for u in urls.split(","))):
        try:
            response = httpx.request(method, url + path, json=body, headers=headers, timeout=60)
        except httpx.TransportError as exc:
            failures.append(f"{url}: {exc}")
            continue
        if response.status_code == 503:
            failures.append(f"{url}: {response.text}")
            continue
        data = response.json()
        print(_members_table(data) if action == "status" and response.is_success
              else json.dumps(data, indent=2))
        return 0 if response.is_success else 1
    print("no node could answer:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 1


def _members_table(status: dict) -> str:
    columns = ("node_id", "raft_address", "url", "role", "term", "commit_index",
               "applied_index", "lag", "reachable", "age_s")
    rows = [columns] + [tuple(str(m.get(c, "")) for c in columns) for m in status["members"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                     for row in rows)
