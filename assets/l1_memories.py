"""L1: consolidated memories distilled from new raw events."""


import time
from typing import Any

import dagster as dg

from assets.selection import (
    by_stream,
    embed,
    range_metadata,
    select_events,
    users_of,
    with_previous,
)
from memorose_dagster.memory.consolidate import consolidate
from memorose_dagster.memory.facts import consolidate_facts
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import Tombstone


def derive(model: ModelResource, events: list[dict[str, Any]],
           streams: dict[str, list[dict[str, Any]]], existing: list[dict[str, Any]]) -> list:
    """The local consolidator, or Gemini's facts when the model provider is Gemini."""
    extractor = model.extractor()
    if extractor is None:
        return consolidate(with_previous(events, streams), streams, existing)
    text_events = [e for e in events if e.get("content_type", "text") == "text"]
    facts = extractor.extract_facts(text_events)
    return consolidate_facts(facts, text_events, existing, extractor.decide_updates,
                             extractor.model)


@dg.asset(key=keys.L1_MEMORIES, deps=[keys.L0_EVENTS], partitions_def=PARTITIONS,
          group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.L1_HAS_PROVENANCE, asset=keys.L1_MEMORIES)])
def l1_memories(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
                model: ModelResource) -> dg.MaterializeResult:
    """Consolidated memories (L1): noise dropped, atomic memories (one per statement of an
    informative event) with the turn's other statements and its neighbouring turns as context,
    relative dates resolved, duplicates merged, older values of
    the same fact superseded, keywords, entities, importance and the ids of the events it came
    from. Ids derive from the source events, so a rerun overwrites in place; memories an earlier
    logic derived only from these events that this one does not produce are retired."""
    started = time.perf_counter()
    events = select_events(context, config, cluster)
    event_ids = {e["event_id"] for e in events}
    memories, retired = [], []
    for tenant, user in users_of(events):
        mine = [e for e in events if e["user_id"] == user and e["tenant"] == tenant]
        # Context and replies come from the same stream: read only the streams touched.
        streams = by_stream(cluster.records("event", tenant, user,
                                            {e["stream_id"] for e in mine}))
        existing = cluster.records("l1", tenant, user)
        fresh = [m.to_dict() for m in derive(model, mine, streams, existing)]
        kept = {m["id"] for m in fresh} | {m["id"] for m in existing
                                           if not event_ids.issuperset(m["source_event_ids"])}
        retired += [Tombstone(tenant=tenant, target_kind="l1", target_id=old["id"],
                              reason="re-derived").to_dict()
                    for old in existing if old["id"] not in kept]
        memories += fresh
    vectors = [v.to_dict() for v in embed(memories, model.embedder())]
    cluster.commit(memories + vectors + retired)
    orphans = [m["id"] for m in memories if not m["source_event_ids"]]
    return dg.MaterializeResult(
        metadata={**range_metadata(config, len(events), len(memories),
                                   time.perf_counter() - started),
                  "retired": len(retired), **model.usage_metadata()},
        check_results=[dg.AssetCheckResult(check_name=keys.L1_HAS_PROVENANCE,
                                           passed=not orphans,
                                           metadata={"without_provenance": len(orphans)})])
