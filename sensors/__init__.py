"""Everything that decides when the pipeline runs: the log sensor, the re-derivation sensor, jobs
and the nightly schedules.

Batching: the sensor keeps the last log index it handed to a run as its cursor. Each tick asks
the cluster whether any event was committed after it; if so it requests one run over
(cursor, applied index] and moves the cursor there. Bursts coalesce into one run per tick, the
ranges of consecutive runs neither overlap nor leave gaps, and the run key (the range) stops a
tick replayed after a daemon restart from requesting the same range twice. Derived records the
pipeline commits itself (vectors, L1, graph) move the applied index but are not events, so they
do not trigger runs.

Re-derivation: every memory names the logic that made it (``derivation``). When the
consolidator changes (or the model provider does), ``rederive_sensor`` finds the ingest days that
hold memories of another logic and requests a backfill run of each such day, once per logic: the
run key is (logic, day).
"""


from datetime import UTC, datetime

import dagster as dg

from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, range_run_config
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from sensors.lake import audit_job as audit_job
from sensors.lake import lake_job as lake_job
from sensors.lake import lake_sensor as lake_sensor
from sensors.lake import nightly_audit_schedule as nightly_audit_schedule

memory_job = dg.define_asset_job(
    "memory_job", selection=dg.AssetSelection.assets(*keys.MEMORY_ASSETS),
    executor_def=dg.in_process_executor,
    description="Derive L0 vectors, L1 memories, the graph and L2 insights for new events.")

insights_refresh_job = dg.define_asset_job(
    "insights_refresh_job", selection=dg.AssetSelection.assets(keys.L2_INSIGHTS),
    executor_def=dg.in_process_executor,
    description="Recompute L2 insights for the users active on a day.")

memory_decay_job = dg.define_asset_job(
    "memory_decay_job", selection=dg.AssetSelection.assets(keys.MEMORY_DECAY),
    executor_def=dg.in_process_executor,
    description="Prune memories that decayed below the floor, with their dependents.")

memory_decay_schedule = dg.ScheduleDefinition(
    name="memory_decay_schedule", job=memory_decay_job, cron_schedule="0 4 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)

nightly_insights_schedule = dg.build_schedule_from_partitioned_job(
    insights_refresh_job, hour_of_day=3, name="nightly_insights_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING)


@dg.sensor(job=memory_job, minimum_interval_seconds=2,
           default_status=dg.DefaultSensorStatus.RUNNING)
def log_sensor(context: dg.SensorEvaluationContext,
               cluster: ClusterResource) -> dg.SensorResult | dg.SkipReason:
    """Requests a memory_job run over every log entry committed since the last request."""
    cursor = int(context.cursor or 0)
    has_events, applied, scanned_to = cluster.has_new(cursor, ["event"])
    if not has_events:
        reason = f"no new events after log index {cursor}"
        if scanned_to > cursor:  # entries without events (access flushes, derived records)
            return dg.SensorResult(skip_reason=reason, cursor=str(scanned_to))
        return dg.SkipReason(reason)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    request = dg.RunRequest(run_key=f"log-{cursor}-{applied}", partition_key=today,
                            run_config=range_run_config(cursor, applied),
                            tags={"memorose/log_after": str(cursor),
                                  "memorose/log_until": str(applied)})
    return dg.SensorResult(run_requests=[request], cursor=str(applied))


@dg.sensor(job=memory_job, minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.RUNNING)
def rederive_sensor(context: dg.SensorEvaluationContext, cluster: ClusterResource,
                    model: ModelResource) -> dg.SensorResult | dg.SkipReason:
    """Requests a backfill run (a whole ingest day) for every day holding L1 memories that an
    older logic derived, so a new consolidator reaches all memories without a manual backfill."""
    current = model.derivation()
    known = set(PARTITIONS.get_partition_keys())
    stale = sorted({day for derivation, days in cluster.derivations("l1").items()
                    if derivation != current for day in days if day in known})
    if not stale:
        return dg.SkipReason(f"every memory is derived by {current}")
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=f"rederive-{current}-{day}", partition_key=day,
                      tags={"memorose/rederive": current}) for day in stale])
