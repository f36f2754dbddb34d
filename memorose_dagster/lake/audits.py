"""The audits of the memory, run in DuckDB over the lake and the nodes' index censuses.

Each audit is a few rules (queries returning the rows that break them). A blocking audit is one
whose failure means corrupt memory (a memory without its sources, a forgotten record still
served, a link across users, a supersede cycle); the others report (indexes are rebuildable,
lag and forgetting are measures).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from memorose_dagster.lake import audit_sql as sql

SAMPLE = 20  # finding rows kept per rule in the report
MAX_LAG_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Audit:
    name: str
    blocking: bool
    description: str
    rules: tuple[tuple[str, str], ...]


AUDITS = (
    Audit("provenance", True, "every L1/L2 record points at existing sources (events, member "
          "memories); events of a consolidated range are covered or filtered as noise",
          (("missing_sources", sql.MISSING_SOURCES),)),
    Audit("integrity", True, "no relation or entity pointing at a record that is gone, no "
          "duplicate memories, nothing tombstoned still in the lake or an index",
          (("orphan_links", sql.ORPHAN_LINKS), ("duplicate_memories", sql.DUPLICATE_MEMORIES),
           ("tombstoned_present", sql.TOMBSTONED_PRESENT))),
    Audit("consistency", False, "per node, user and layer: RocksDB counts equal Tantivy and "
          "LanceDB counts (fix: memorose reindex)", (("index_counts", sql.INDEX_MISMATCH),)),
    Audit("isolation", True, "no record links records of two users or two tenants",
          (("cross_links", sql.CROSS_LINKS),)),
    Audit("supersede", True, "supersede chains have no cycles and every replacement exists",
          (("chains", sql.SUPERSEDE_CYCLES),)),
    Audit("freshness", False, "consolidation lag per user (oldest event not yet in any memory) "
          "under the limit; how far the lake is behind the log", ()),
    Audit("forgetting", False, "what decay, forgets and re-derivation removed per day, and "
          "the memories kept", ()),
)
BLOCKING = {a.name for a in AUDITS if a.blocking}


def rows(con: duckdb.DuckDBPyConnection, query: str,
         params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(query, params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _rule(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any]:
    found = rows(con, query)
    return {"count": len(found), "sample": found[:SAMPLE]}


def run_audits(con: duckdb.DuckDBPyConnection, now: float | None = None,
               applied_index: int | None = None,
               max_lag_seconds: float = MAX_LAG_SECONDS) -> dict[str, Any]:
    """Every audit over the views of ``con`` (see ``views.connect``), as one JSON-able report."""
    now = time.time() if now is None else now
    now_ms = int(now * 1000)
    results = []
    for audit in AUDITS:
        rules = {name: _rule(con, query) for name, query in audit.rules}
        results.append({"name": audit.name, "blocking": audit.blocking,
                        "description": audit.description, "rules": rules,
                        "findings": sum(r["count"] for r in rules.values()),
                        "passed": all(r["count"] == 0 for r in rules.values())})
    by_name = {r["name"]: r for r in results}
    coverage = {r["status"]: r["n"] for r in rows(
        con, f"SELECT status, count(*) AS n FROM ({sql.COVERAGE}) GROUP BY ALL ORDER BY ALL")}
    by_name["provenance"]["metrics"] = {"events_by_status": coverage}
    lag = rows(con, sql.CONSOLIDATION_LAG, {"now_ms": now_ms})
    lake_index = con.execute(sql.LAKE_INDEX).fetchone()[0] or 0
    worst = max((r["lag_seconds"] for r in lag), default=0.0)
    by_name["freshness"].update(passed=worst <= max_lag_seconds, findings=sum(
        1 for r in lag if r["lag_seconds"] > max_lag_seconds), metrics={
        "max_consolidation_lag_seconds": worst, "users_with_pending_events": len(lag),
        "lake_log_index": lake_index, "applied_index": applied_index,
        "lake_behind_entries": None if applied_index is None else applied_index - lake_index})
    forgetting = rows(con, sql.FORGETTING)
    by_name["forgetting"]["metrics"] = {k: sum(r[k] for r in forgetting)
                                        for k in ("decayed", "forgotten", "retired", "kept")}
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "passed": all(r["passed"] for r in results if r["blocking"]),
        "audits": results,
        "charts": {"layers_per_day": rows(con, sql.LAYERS_PER_DAY), "forgetting": forgetting,
                   "consolidation_lag": lag[:SAMPLE],
                   "top_users": rows(con, sql.TOP_USERS, {"limit": 10})},
    }
