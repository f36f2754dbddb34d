"""``memorose audit`` and ``memorose sql``: the audit report and ad-hoc DuckDB over the lake."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from memorose_client import MemoroseClient, MemoroseConnectionError
from memorose_dagster.lake import build, html, views
from memorose_dagster.lake.report import as_table, build_report


def _census(client: MemoroseClient) -> list[dict]:
    try:
        return client.index_census()
    except MemoroseConnectionError as exc:
        print(f"memorose audit: no node reachable ({exc}); index audits skipped",
              file=sys.stderr)
        return []


def audit(url: str, admin_key: str | None, root: Path, as_json: bool, html_path: Path | None,
          refresh: bool) -> int:
    """Print the report (a table, or JSON); write it as HTML too if asked. Exit code 1 when a
    blocking audit failed."""
    with MemoroseClient(url, api_key=admin_key) as client:
        if refresh:
            build.refresh(client, root)
        census = _census(client)
    applied = max((c["applied_index"] for c in census), default=None)
    report = build_report(root, census, applied)
    if html_path is not None:
        html_path.write_text(html.render(report))
        print(f"memorose audit: wrote {html_path}", file=sys.stderr)
    print(json.dumps(report, indent=1, default=str) if as_json else as_table(report))
    return 0 if report["passed"] else 1


def sql(root: Path, query: str, as_json: bool) -> int:
    """Run ``query`` in DuckDB over the lake's views; print a table (or JSON rows)."""
    con = views.connect(root)
    try:
        result = con.execute(query)
        names = [d[0] for d in result.description or []]
        rows = result.fetchall()
    finally:
        con.close()
    if as_json:
        print(json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str))
        return 0
    cells = [names] + [[str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(names))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"({len(rows)} rows)", file=sys.stderr)
    return 0
