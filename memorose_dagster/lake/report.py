"""The audit report: the audits run over the lake and the nodes' censuses, and its rendering
as a terminal table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memorose_dagster.lake import audits, views


def build_report(root: Path, census: list[dict[str, Any]], applied_index: int | None = None,
                 now: float | None = None,
                 max_lag_seconds: float = audits.MAX_LAG_SECONDS) -> dict[str, Any]:
    """Every audit over the lake at ``root`` and the index censuses of the nodes."""
    con = views.connect(root, census)
    try:
        report = audits.run_audits(con, now, applied_index, max_lag_seconds)
    finally:
        con.close()
    report["lake"] = str(root)
    report["nodes"] = [{k: c.get(k) for k in ("node_id", "applied_index", "indexed_index",
                                                "caught_up", "model")} for c in census]
    return report


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)


def status_of(audit: dict[str, Any]) -> str:
    if audit["passed"]:
        return "ok"
    return "FAIL" if audit["blocking"] else "warn"


def detail_of(audit: dict[str, Any]) -> str:
    parts = [f"{name} {rule['count']}" for name, rule in audit["rules"].items()]
    metrics = audit.get("metrics", {})
    if audit["name"] == "provenance":
        parts += [f"{k} {v}" for k, v in metrics.get("events_by_status", {}).items()]
    elif audit["name"] == "freshness":
        parts += [f"max lag {metrics['max_consolidation_lag_seconds']:.0f}s",
                  f"users pending {metrics['users_with_pending_events']}",
                  f"lake behind {metrics['lake_behind_entries']} entries"]
    elif audit["name"] == "forgetting":
        parts += [f"{k} {v}" for k, v in metrics.items()]
    return ", ".join(parts)


def as_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width table, one audit per line, then a sample of findings."""
    lines = [f"{'audit':<12} {'blocking':<8} {'status':<6} {'findings':>8}  detail"]
    for audit in report["audits"]:
        lines.append(f"{audit['name']:<12} {'yes' if audit['blocking'] else 'no':<8} "
                     f"{status_of(audit):<6} {audit['findings']:>8}  {detail_of(audit)}")
    for audit in report["audits"]:
        for name, rule in audit["rules"].items():
            for row in rule["sample"][:5]:
                lines.append(f"  {audit['name']}.{name}: " + json.dumps(row, default=str))
    verdict = "all blocking audits passed" if report["passed"] else "a blocking audit FAILED"
    lines.append(f"{verdict} ({report['generated_at']}, lake {report['lake']})")
    return "\n".join(lines)
