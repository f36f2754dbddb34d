"""When the lake is written and the audits run: a sensor following the whole log (every
kind of record, so derived records, tombstones and access counts reach the lake too) and a
nightly audit schedule."""


from datetime import UTC, datetime

import dagster as dg

from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.lanes import IN_BACKLOG
from memorose_dagster.pipeline.resources import ClusterResource

LAKE_OP = "memory_lake"

lake_job = dg.define_asset_job(
    "lake_job", selection=dg.AssetSelection.assets(*keys.LAKE_ASSETS.values()),
    executor_def=dg.in_process_executor, tags=IN_BACKLOG,
    description="Write the lake partitions a log range touched (or a day, or everything).")

audit_job = dg.define_asset_job(
    "audit_job", selection=dg.AssetSelection.assets(keys.MEMORY_AUDIT),
    executor_def=dg.in_process_executor, tags=IN_BACKLOG,
    description="Run the DuckDB audits over the lake and the nodes' index censuses.")

nightly_audit_schedule = dg.ScheduleDefinition(
    name="nightly_audit_schedule", job=audit_job, cron_schedule="0 5 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)


def lake_run_config(after: int, until: int) -> dict:
    return {"ops": {LAKE_OP: {"config": {"after": after, "until": until}}}}


@dg.sensor(job=lake_job, minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING)
def lake_sensor(context: dg.SensorEvaluationContext,
                cluster: ClusterResource) -> dg.SensorResult | dg.SkipReason:
    """Requests a lake_job run over every log entry committed since the last request, whatever
    it holds: the lake mirrors derived records and tombstones as well as events."""
    cursor = int(context.cursor or 0)
    has_new, applied = cluster.has_new(cursor, [])
    if not has_new:
        return dg.SkipReason(f"nothing committed after log index {cursor}")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"lake-{cursor}-{applied}", partition_key=today,
        run_config=lake_run_config(cursor, applied))], cursor=str(applied))
