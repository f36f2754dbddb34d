"""``memorose keys create|list|revoke``: tenant keys over a node's HTTP API, with the admin key
(``MEMOROSE_ADMIN_KEY``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from memorose_dagster.cli.admin_http import admin_request

COLUMNS = ("key_id", "tenant", "read_only", "name", "created_at", "revoked")


def keys_command(args: argparse.Namespace) -> int:
    """One key action over HTTP, trying each URL until a node answers."""
    method, path, body = {
        "create": ("POST", "/api/v1/admin/keys",
                   {"tenant": getattr(args, "tenant", ""),
                    "read_only": getattr(args, "read_only", False),
                    "name": getattr(args, "name", "")}),
        "list": ("GET", "/api/v1/admin/keys", None),
        "revoke": ("DELETE", f"/api/v1/admin/keys/{getattr(args, 'key_id', '')}", None),
    }[args.action]
    response, failures = admin_request(method, path, body, args.url)
    if response is None:
        print("no node could answer:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    data = response.json()
    if not response.is_success:
        print(f"memorose keys {args.action}: HTTP {response.status_code}: "
              f"{data.get('error', {}).get('message', response.text)}", file=sys.stderr)
        return 1
    if args.action == "create":
        print("the secret is shown this once; the node keeps only its hash", file=sys.stderr)
    print(_table(data["keys"]) if args.action == "list" else json.dumps(data, indent=2))
    return 0


def _table(keys: list[dict[str, Any]]) -> str:
    rows = [COLUMNS] + [tuple(str(k.get(c, "")) for c in COLUMNS) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def add_keys_commands(sub: argparse._SubParsersAction) -> None:
    p_keys = sub.add_parser("keys", help="make, list and revoke tenant API keys (admin key)")
    actions = p_keys.add_subparsers(dest="action", required=True)
    url = os.environ.get("MEMOROSE_URL", "http://127.0.0.1:8000")
    p_create = actions.add_parser("create", help="make a key for one tenant; prints its secret")
    p_create.add_argument("--tenant", required=True, help="the tenant the key reaches")
    p_create.add_argument("--read-only", action="store_true",
                          help="retrieve and read only: no ingest, delete or forget")
    p_create.add_argument("--name", default="", help="a label (who holds it, what for)")
    actions.add_parser("list", help="every key made at run time (no secrets)")
    p_revoke = actions.add_parser("revoke", help="revoke a key on every replica")
    p_revoke.add_argument("key_id", help="the key's id (from create or list)")
    for parser in actions.choices.values():
        parser.add_argument("--url", default=url,
                            help="node URL(s), comma-separated (MEMOROSE_URL)")
        parser.set_defaults(func=keys_command)
