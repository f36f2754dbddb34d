"""The lake: every layer as parquet (polars), partitioned by tenant and ingest day."""


import time
from pathlib import Path

import dagster as dg

from memorose_dagster.lake.build import merge_range, refresh
from memorose_dagster.lake.resource import LakeResource
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource

DESCRIPTIONS = {
    "events": "L0 events as sent (metadata as JSON text), with their log index.",
    "memories": "L1 memories with provenance (source_event_ids), supersede links, importance.",
    "insights": "L2 insights with their member memories and source events.",
    "entities": "Graph entities with aliases and the memories that mention them.",
    "relations": "Graph relations (typed, weighted) with the events they rest on.",
    "vectors": "What describes each vector (record, layer, model, dim, norm), not its values.",
    "tombstones": "Forgetting tombstones: target kind and id, reason, log index.",
    "access": "Retrieval counts per memory (running totals) with the last access time.",
}

SPECS = [dg.AssetSpec(key, deps=keys.LAKE_TABLES[table], group_name="memory",
                      partitions_def=PARTITIONS, kinds={"parquet", "polars"},
                      description=f"Lake table `{table}`: {DESCRIPTIONS[table]} Partitioned "
                      "by tenant and ingest day of the earliest event a record rests on.")
         for table, key in keys.LAKE_ASSETS.items()]


def _write(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
           root: Path) -> tuple[dict[str, dict], str]:
    """A log range merges what it changed, a backfill rewrites its day, a run without
    partition (or a range from the start of the log) rewrites the whole lake."""
    ranged = config.until > 0 or (config.after > 0 and context.has_partition_key)
    if ranged and config.after > 0:
        return merge_range(cluster.client, root, config.after, config.until or None), "log range"
    if context.has_partition_key and not ranged:
        return refresh(cluster.client, root, {context.partition_key}), "day"
    return refresh(cluster.client, root), "everything"


@dg.multi_asset(name="memory_lake", specs=SPECS, partitions_def=PARTITIONS)
def memory_lake(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
                lake: LakeResource):
    """Writes the lake's partitions that a log range, a day or a full rebuild selects, from the
    records the node serves (``/api/v1/admin/lake/records``, ``/api/v1/admin/lake/rows``)."""
    started = time.perf_counter()
    root = lake.path()
    stats, chosen = _write(context, config, cluster, root)
    for table, key in keys.LAKE_ASSETS.items():
        yield dg.MaterializeResult(asset_key=key, metadata={
            **stats[table], "scope": chosen, "root": str(root),
            "log_after": config.after, "log_until": config.until,
            "run_seconds": round(time.perf_counter() - started, 3)})
