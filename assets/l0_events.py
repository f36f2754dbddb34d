"""L0: raw events as committed, embedded; the vectors go back through the log."""


import time

import dagster as dg

from assets.selection import EmbedBeside, range_metadata, select_events, vectors_are_unit
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource

EMBED_LOT = 500  # events embedded at a time; a lot is committed while the next one embeds


@dg.asset(key=keys.L0_EVENTS, partitions_def=PARTITIONS, group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.L0_ALL_EMBEDDED, asset=keys.L0_EVENTS)])
def l0_events(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
              model: ModelResource) -> dg.MaterializeResult:
    """Raw events committed to the Raft log (L0), each embedded by the configured model; the
    vectors are committed back through the log and indexed in LanceDB on every node."""
    started = time.perf_counter()
    events = select_events(context, config, cluster)
    text_events = [e for e in events if e.get("content_type", "text") == "text"]
    embedder = model.embedder()
    vectors = []
    with EmbedBeside(embedder, lot=EMBED_LOT) as beside:
        beside.add(text_events)
        for lot in beside.lots():  # committed while the next lot is embedded
            cluster.commit([v.to_dict() for v in lot])
            vectors += lot
    passed = len(vectors) == len(text_events) and vectors_are_unit(vectors, embedder.dim)
    return dg.MaterializeResult(
        metadata={**range_metadata(config, len(events), len(vectors),
                                   time.perf_counter() - started), "model": embedder.name},
        check_results=[dg.AssetCheckResult(check_name=keys.L0_ALL_EMBEDDED, passed=passed,
                                           metadata={"vectors": len(vectors)})])
