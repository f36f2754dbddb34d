"""L2: insights over many L1 memories, with stable ids."""


import time
from typing import Any

import dagster as dg

from assets.selection import (
    EmbedBeside,
    deferred,
    needs_vector,
    range_metadata,
    read_ahead,
    select_events,
    unchanged,
    users_coming,
    users_of,
    with_vectors,
)
from memorose_dagster.memory.insights import MIN_MEMBERS, derive_insights
from memorose_dagster.models.ner import entity_extractor
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import Tombstone

EMBED_LOT = 128  # insights embedded at a time, while the next users are derived


def summarised(insight: dict, memories: list[dict], model: ModelResource) -> dict:
    """On the Gemini path the model writes the insight's text from its members."""
    extractor = model.extractor()
    if extractor is None:
        return insight
    members = [m for m in memories if m["id"] in set(insight["member_ids"])]
    return {**insight, "content": extractor.summarise(members)}


def derive_and_commit(config: LogRange, events: list[dict[str, Any]], cluster: ClusterResource,
                      model: ModelResource) -> tuple[list[dict], list[dict], list[dict], list,
                                                     int, int]:
    """The insights of the range's users (but those a later chunk derives), those that changed,
    what they retire, the new vectors, memories read and users deferred; committed (the caller
    holds the users' lease)."""
    insights, changed, retired, memories_in, later = [], [], [], 0, 0
    coming = users_coming(config, cluster, users_of(events))

    def read(user: tuple[str, str]) -> tuple[list[dict], list[dict] | None]:
        """The user's stored insights, and memories unless the user is deferred."""
        before = cluster.records("l2", *user)
        if deferred(user, coming, before, config.until):
            return before, None
        return before, cluster.records("l1", *user)

    extract = entity_extractor()
    # The changed insights embed while the next users are read and derived.
    with EmbedBeside(model.embedder(), lot=EMBED_LOT) as beside:
        for (tenant, _), (before, memories) in read_ahead(users_of(events), read):
            if memories is None:
                later += 1
                continue
            memories_in += len(memories)
            fresh = [summarised(i.to_dict(), memories, model)
                     for i in derive_insights(memories, extract)]
            ids = {i["id"] for i in fresh}
            stored = {old["id"]: old for old in before}
            retired += [Tombstone(tenant=tenant, target_kind="l2", target_id=old["id"],
                                  reason="topic no longer recurs").to_dict()
                        for old in before if old["id"] not in ids]
            insights += fresh
            # Most of a user's insights come out as they were: only what changed is committed.
            mine = [i for i in fresh if not unchanged(i, stored.get(i["id"]))]
            beside.add([i for i in mine if needs_vector(i, stored.get(i["id"]))])
            changed += mine
        vectors = beside.vectors()
    cluster.commit_groups(with_vectors(changed, vectors) + [[r] for r in retired])
    return insights, changed, retired, vectors, memories_in, later


@dg.asset(key=keys.L2_INSIGHTS, deps=[keys.MEMORY_GRAPH], partitions_def=PARTITIONS,
          group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.L2_HAS_MEMBERS, asset=keys.L2_INSIGHTS)])
def l2_insights(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
                model: ModelResource) -> dg.MaterializeResult:
    """Insights (L2): what one speaker keeps coming back to across sessions, with member ids and
    the source events behind them. The id is (user, speaker, topic), so a rerun updates an
    insight in place; one whose topic no longer recurs is retired with a tombstone."""
    started = time.perf_counter()
    events = select_events(context, config, cluster)
    with cluster.leased(context, users_of(events)) as waited:
        insights, changed, retired, vectors, memories_in, later = derive_and_commit(
            config, events, cluster, model)
    thin = [i["id"] for i in insights if len(i["member_ids"]) < MIN_MEMBERS]
    return dg.MaterializeResult(
        metadata={**range_metadata(config, memories_in, len(insights),
                                   time.perf_counter() - started), "retired": len(retired),
                  "changed": len(changed), "embedded": len(vectors), "users_deferred": later,
                  "lease_wait_s": round(waited, 3), **model.usage_metadata()},
        check_results=[dg.AssetCheckResult(check_name=keys.L2_HAS_MEMBERS, passed=not thin,
                                           metadata={"thin_insights": len(thin)})])
