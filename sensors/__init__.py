"""Everything that decides when the pipeline runs: the log sensor, the re-derivation sensor, jobs
and the nightly schedules.

Batching: the sensor keeps the last log index it handed to a run as its cursor. Each tick asks
the cluster whether any event was committed after it; if so it requests runs over
(cursor, applied index] and moves the cursor there. Bursts coalesce into one run per tick, the
ranges of consecutive runs neither overlap nor leave gaps, and the run key (the range) stops a
tick replayed after a daemon restart from requesting the same range twice. Derived records the
pipeline commits itself (vectors, L1, graph) move the applied index but are not events, so they
do not trigger runs.

Lanes: ``memorose up`` runs one run at a time in each of two lanes (the ``memorose/lane`` tag):
``fresh`` for a tick's ordinary range of new events, ``backlog`` for everything else. A tick that
finds more than ``CHUNK_EVENTS`` events (counted by the node from the log, no event sent) makes them
a backlog (but for a tail of at most ``FRESH_TAIL`` events, sent after it), and so does an import
however few events the tick finds (an entry of ``IMPORT_EVENTS`` or more: history sent in bulk, not
conversation traffic; it and what precedes it in the tick); events that follow the last backlog
extend it, as a bulk load seen over several ticks does. A backlog is cut into ranges of about
``CHUNK_EVENTS`` events, requested a few at a time (``BACKLOG_QUEUE`` waiting at most, see
``sensors/backlog.py``) in the backlog lane, at a lower run priority (``dagster/priority`` -1) than
fresh ranges (0). So a fresh event waits neither for the backlog nor for the chunk that is running:
its run starts beside the chunk. Two runs then derive at once; each step leases the users it derives
first (``node/leases.py``), so a user whose bulk load is being derived gets fresh memories once the
chunk's step holding them ends, and nobody else waits. Fresh runs never overlap one another: a fresh
run may leave a user's graph and insights to the next one, which must not have derived them already.
While a fresh run waits, new events wait for the next fresh range (a run costs ~2 s however few its
events: one a tick would pile up). Where Dagster runs one run at a time (one lane), fresh runs alone
could keep the slot busy, so the backlog gets a turn at least every ``BACKLOG_TURN`` seconds: fresh
ranges then wait until a chunk has started. Deriving a user's fresh events before older ones of a
backlog gives the same memories (``memory/consolidate.py`` merges either way round), and a chunk
defers a user's graph and insights only to later chunks of its own backlog (``LogRange.horizon``):
the last one defers nobody, whatever was derived after it.

Re-derivation: every memory names the logic that made it (``derivation``). When the
consolidator changes (or the model provider does), ``rederive_sensor`` finds the ingest days that
hold memories of another logic and requests a backfill run of each such day, once per logic: the
run key is (logic, day). Those runs are backlog too: priority -1.
"""


from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.lanes import BACKLOG_LANE, FRESH_LANE, IN_BACKLOG, LANE_TAG
from memorose_dagster.pipeline.partitions import PARTITIONS, range_run_config
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from sensors.backlog import LogCursor, fresh_tail, next_chunks
from sensors.lake import audit_job as audit_job
from sensors.lake import lake_job as lake_job
from sensors.lake import lake_sensor as lake_sensor
from sensors.lake import nightly_audit_schedule as nightly_audit_schedule

# Events per run of a backlog: 5-8 s of derivation on 2 cores, the longest a fresh range waits
# behind it; each run also costs ~2 s to launch and dequeue, so smaller chunks slow the backlog
# down (500: fresh p95 -4 s, bulk +46%; bench/README.md, pipeline_lag.py --bulk).
CHUNK_EVENTS = 1000
BACKLOG_QUEUE = 2  # backlog chunks kept queued: the lane never waits for a tick to go on
FRESH_TAIL = 100  # events at the end of a new backlog derived as fresh ones: a tick's traffic
# An entry (one ingest request) of this many events is an import of history, not conversation
# traffic, however few the tick found: it goes to the backlog lane. Derived as a fresh range it
# held the fresh lane for 15-25 s (a bulk load's first or last share in a tick) while the
# traffic's next run waited behind it.
IMPORT_EVENTS = 100
# Seconds the backlog may wait behind fresh runs before fresh ranges wait for it: 30 s of fresh
# runs, then a chunk (~10 s) gives the backlog a quarter of the slot under steady traffic.
BACKLOG_TURN = 30.0
PRIORITY_TAG = "dagster/priority"  # read by Dagster's QueuedRunCoordinator
FRESH_PRIORITY, BACKLOG_PRIORITY = "0", "-1"
WAITING = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED]
RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
           dg.DagsterRunStatus.CANCELING]
DONE = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

memory_job = dg.define_asset_job(
    "memory_job", selection=dg.AssetSelection.assets(*keys.MEMORY_ASSETS),
    executor_def=dg.in_process_executor, tags=IN_BACKLOG,
    description="Derive L0 vectors, L1 memories, the graph and L2 insights for new events.")

insights_refresh_job = dg.define_asset_job(
    "insights_refresh_job", selection=dg.AssetSelection.assets(keys.L2_INSIGHTS),
    executor_def=dg.in_process_executor, tags=IN_BACKLOG,
    description="Recompute L2 insights for the users active on a day.")

memory_decay_job = dg.define_asset_job(
    "memory_decay_job", selection=dg.AssetSelection.assets(keys.MEMORY_DECAY),
    executor_def=dg.in_process_executor, tags=IN_BACKLOG,
    description="Prune memories that decayed below the floor, with their dependents.")

memory_decay_schedule = dg.ScheduleDefinition(
    name="memory_decay_schedule", job=memory_decay_job, cron_schedule="0 4 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)

nightly_insights_schedule = dg.build_schedule_from_partitioned_job(
    insights_refresh_job, hour_of_day=3, name="nightly_insights_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING)


@dg.sensor(job=memory_job, minimum_interval_seconds=1,
           default_status=dg.DefaultSensorStatus.RUNNING)
def log_sensor(context: dg.SensorEvaluationContext,
               cluster: ClusterResource) -> dg.SensorResult | dg.SkipReason:
    """Requests memory_job runs over every log entry committed since the last request: one run,
    or a backlog handed out in chunks at a lower priority."""
    cursor = LogCursor.parse(context.cursor)
    before, requests = cursor.dump(), []
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    # Every tick (each second): new events wait while a fresh run waits, backlog or not; else
    # a run a tick piles up behind the one running (~2 s each) and the lag grows without end.
    queue = RunQueue.of(context.instance)
    has_events, applied, scanned_to = cluster.has_new(cursor.handed, ["event"])
    if has_events and not queue.holds_fresh:  # else: into the next fresh range
        requests += hand_out(cursor, cluster, applied, day)
    elif not has_events:  # perhaps entries without events (access flushes, derived records)
        cursor.handed = max(cursor.handed, scanned_to)
    if cursor.backlogs:
        wanted = BACKLOG_QUEUE - queue.waiting
        requests += [range_request(after, until, day, BACKLOG_PRIORITY, horizon=horizon)
                     for after, until, horizon in next_chunks(cursor, cluster, wanted,
                                                              CHUNK_EVENTS)]
    elif cursor.draining and not queue.waiting + queue.running and not requests:
        cursor.draining = False
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor.dump())
    reason = f"nothing to request after log index {cursor.handed}" + (
        " while a backlog drains" if cursor.draining else "")
    if cursor.dump() != before:
        return dg.SensorResult(skip_reason=reason, cursor=cursor.dump())
    return dg.SkipReason(reason)


def hand_out(cursor: LogCursor, cluster: ClusterResource, applied: int,
             day: str) -> list[dg.RunRequest]:
    """The events in (handed, applied]: a fresh range, a backlog, or a backlog and a fresh range
    after it. The backlog holds every import (an entry of ``IMPORT_EVENTS`` or more) and what
    precedes it, and, when there are more than ``CHUNK_EVENTS`` events, all but a fresh tail."""
    after, entries = cursor.handed, cluster.event_counts(cursor.handed, applied)[0]
    cursor.handed = applied
    split = after
    if sum(events for _, events in entries) > CHUNK_EVENTS:
        split = fresh_tail(entries, after, FRESH_TAIL)
    split = max([split] + [index for index, events in entries if events >= IMPORT_EVENTS])
    if split > after and entries[-1][0] <= split:  # no events after it: the backlog ends here
        split = applied
    if split > after:
        if cursor.backlogs and cursor.backlogs[-1][1] == after:
            # A bulk load seen over several ticks (it takes seconds to send) is one backlog:
            # its chunks not yet requested get the new end as their horizon, so a user's graph
            # and insights wait for the user's last chunk of the whole load, not of one share.
            cursor.backlogs[-1] = (cursor.backlogs[-1][0], split)
        else:
            cursor.backlogs.append((after, split))
        cursor.draining = True
    return [range_request(split, applied, day, FRESH_PRIORITY)] if split < applied else []


@dataclass
class RunQueue:
    """memory_job runs while a backlog drains: fresh ones waiting; backlog ones waiting and in
    progress, and how many seconds ago one last started or ended (or the oldest was queued)."""

    fresh_waiting: int
    waiting: int
    running: int
    idle: float

    @property
    def holds_fresh(self) -> bool:
        """New events wait for the next fresh range: one fresh run already waits (it runs next;
        one run a tick would pile up behind a chunk, ~4 s a run), or the backlog has waited its
        turn out."""
        return bool(self.fresh_waiting) or (
            bool(self.waiting) and not self.running and self.idle > BACKLOG_TURN)

    @classmethod
    def of(cls, instance: dg.DagsterInstance) -> "RunQueue":
        def runs(statuses: list[dg.DagsterRunStatus],
                 priority: str = BACKLOG_PRIORITY) -> dg.RunsFilter:
            return dg.RunsFilter(job_name=memory_job.name, statuses=statuses,
                                 tags={PRIORITY_TAG: priority})

        oldest = instance.get_run_records(runs(WAITING), limit=1, order_by="create_timestamp",
                                          ascending=True)
        moved = instance.get_run_records(runs(RUNNING + DONE), limit=1,
                                         order_by="update_timestamp")
        now = datetime.now(UTC)
        last = max([r.create_timestamp for r in oldest] + [r.update_timestamp for r in moved],
                   default=now)
        return cls(instance.get_runs_count(runs(WAITING, FRESH_PRIORITY)),
                   instance.get_runs_count(runs(WAITING)), instance.get_runs_count(runs(RUNNING)),
                   (now - last).total_seconds())


def range_request(after: int, until: int, day: str, priority: str,
                  horizon: int = 0) -> dg.RunRequest:
    """A memory_job run over (after, until]; the run key is the range."""
    return dg.RunRequest(run_key=f"log-{after}-{until}", partition_key=day,
                         run_config=range_run_config(after, until, horizon=horizon),
                         tags={"memorose/log_after": str(after), "memorose/log_until": str(until),
                               PRIORITY_TAG: priority,
                               LANE_TAG: FRESH_LANE if priority == FRESH_PRIORITY
                               else BACKLOG_LANE})


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
                      tags={"memorose/rederive": current, PRIORITY_TAG: BACKLOG_PRIORITY,
                            **IN_BACKLOG})
        for day in stale])
