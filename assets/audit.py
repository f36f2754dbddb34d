"""The memory audits: DuckDB over the lake and the nodes' index censuses, as asset checks."""


import time

import dagster as dg

from memorose_dagster.lake.audits import AUDITS
from memorose_dagster.lake.report import build_report, write_report
from memorose_dagster.lake.resource import LakeResource
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.resources import ClusterResource

CHECKS = [dg.AssetCheckSpec(keys.AUDIT_CHECKS[a.name], asset=keys.MEMORY_AUDIT,
                            blocking=a.blocking, description=a.description) for a in AUDITS]


@dg.asset(key=keys.MEMORY_AUDIT, deps=list(keys.LAKE_ASSETS.values()), group_name="memory",
          check_specs=CHECKS, kinds={"duckdb"})
def memory_audit(cluster: ClusterResource, lake: LakeResource) -> dg.MaterializeResult:
    """The audit report of the memory: provenance, integrity, index consistency, isolation,
    freshness, supersede chains and forgetting, in DuckDB over the lake and every node's index
    census; written to `_audit/report.json` in the lake. Checks that fail on corrupt memory
    (provenance, integrity, isolation, supersede) are blocking."""
    started = time.perf_counter()
    root = lake.path()
    census = cluster.client.index_census()
    applied = max((c["applied_index"] for c in census), default=None)
    report = build_report(root, census, applied)
    write_report(report, root / "_audit" / "report.json")
    checks = [dg.AssetCheckResult(
        check_name=keys.AUDIT_CHECKS[a["name"]], passed=a["passed"],
        severity=dg.AssetCheckSeverity.ERROR if a["blocking"] else dg.AssetCheckSeverity.WARN,
        metadata={"findings": a["findings"], **{f"rule_{k}": v["count"]
                                                for k, v in a["rules"].items()},
                  **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                     for k, v in a.get("metrics", {}).items() if v is not None}})
        for a in report["audits"]]
    return dg.MaterializeResult(
        metadata={"passed": report["passed"], "nodes": len(census),
                  "seconds": round(time.perf_counter() - started, 3)},
        check_results=checks)
