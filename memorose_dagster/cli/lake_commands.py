"""The lake's subcommands: ``audit``, ``sql``, ``export`` and ``import``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from memorose_dagster.lake.files import default_root


def _common(parser: argparse.ArgumentParser, url: bool = True, lake: bool = True) -> None:
    if url:
        parser.add_argument("--url", default=os.environ.get("MEMOROSE_URL",
                                                            "http://127.0.0.1:8000"),
                            help="node URL(s), comma-separated (MEMOROSE_URL)")
    if lake:
        parser.add_argument("--lake", type=Path, default=None,
                            help="lake directory (MEMOROSE_LAKE, else $MEMOROSE_HOME/lake)")


def _admin_key() -> str | None:
    return os.environ.get("MEMOROSE_ADMIN_KEY") or None


def add_lake_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit the memory (DuckDB over the lake); exit 1 when a "
                       "blocking audit fails")
    _common(p)
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--html", type=Path, default=None, help="also write a self-contained "
                   "HTML report with charts to this file")
    p.add_argument("--refresh", action="store_true",
                   help="rewrite the whole lake from the node first")
    p.set_defaults(func=_audit)
    p = sub.add_parser("sql", help="run DuckDB SQL over the lake's views (events, memories, "
                       "insights, entities, relations, vectors, tombstones, access)")
    _common(p, url=False)
    p.add_argument("query", help='e.g. "SELECT user_id, count(*) FROM memories GROUP BY 1"')
    p.add_argument("--json", action="store_true", help="rows as JSON")
    p.set_defaults(func=_sql)


def _audit(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.audit import audit

    return audit(args.url, _admin_key(), args.lake or default_root(), args.json, args.html,
                 args.refresh)


def _sql(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.audit import sql

    return sql(args.lake or default_root(), args.query, args.json)
