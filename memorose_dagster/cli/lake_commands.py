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
    p = sub.add_parser("export", help="write a tenant (or one user) as a versioned archive: "
                       "parquet files and a manifest with counts and checksums")
    _common(p, lake=False)
    p.add_argument("--tenant", required=True, help="the tenant to export")
    p.add_argument("--user", default=None, help="only this user's records")
    p.add_argument("directory", type=Path, help="where the archive goes")
    p.set_defaults(func=_export)
    p = sub.add_parser("import", help="import an archive into a node (empty, or another "
                       "tenant); rerun after an interruption: nothing is duplicated")
    _common(p, lake=False)
    p.add_argument("--tenant", default=None, help="target tenant (default: the archive's; "
                   "must be the one MEMOROSE_API_KEY reaches when keys are on)")
    p.add_argument("directory", type=Path, help="the archive")
    p.set_defaults(func=_import)


def _audit(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.audit import audit

    return audit(args.url, _admin_key(), args.lake or default_root(), args.json, args.html,
                 args.refresh)


def _sql(args: argparse.Namespace) -> int:
    from memorose_dagster.cli.audit import sql

    return sql(args.lake or default_root(), args.query, args.json)


def _export(args: argparse.Namespace) -> int:
    from memorose_client import MemoroseClient
    from memorose_dagster.lake.transfer import export

    with MemoroseClient(args.url, api_key=_admin_key()) as client:
        manifest = export(client, args.tenant, args.directory, args.user)
    print(f"memorose export: {manifest['records']:,} records of tenant {args.tenant} "
          f"in {args.directory}")
    return 0


def _import(args: argparse.Namespace) -> int:
    import sys

    from memorose_client import MemoroseClient
    from memorose_dagster.lake.archive import ArchiveError
    from memorose_dagster.lake.transfer import WrongTenant, import_archive

    key = os.environ.get("MEMOROSE_API_KEY") or _admin_key()
    with MemoroseClient(args.url, api_key=key) as events, \
            MemoroseClient(args.url, api_key=_admin_key()) as admin:
        try:
            sent = import_archive(_Split(events, admin), args.directory, args.tenant)
        except (ArchiveError, WrongTenant) as exc:
            print(f"memorose import: refused: {exc}", file=sys.stderr)
            return 2
    print(f"memorose import: {sum(sent.values()):,} records from {args.directory}")
    return 0


class _Split:
    """Events go in with the tenant's key, derived records with the admin key."""

    def __init__(self, events: object, admin: object):
        self.whoami = events.whoami  # type: ignore[attr-defined]
        self.ingest_batch = events.ingest_batch  # type: ignore[attr-defined]
        self.commit = admin.commit  # type: ignore[attr-defined]
        self.list_records = admin.list_records  # type: ignore[attr-defined]
