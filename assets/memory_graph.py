"""The knowledge graph: entities and relations derived from L1 memories."""


import time
from typing import Any

import dagster as dg

from assets.selection import (
    deferred,
    range_metadata,
    select_events,
    unchanged,
    users_coming,
    users_of,
)
from memorose_dagster.memory.graph import build_graph
from memorose_dagster.models.ner import entity_extractor
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource
from memorose_dagster.records import Tombstone


def derive_and_commit(config: LogRange, events: list[dict[str, Any]], cluster: ClusterResource,
                      ) -> tuple[list[dict], list, list, list[dict], int, int]:
    """The graph of the range's users (but those a later chunk derives), what it retires, how
    many users were deferred and how many entities and relations changed; committed (the caller
    holds the users' lease). Most of a user's graph comes out as it was: only what changed is
    committed."""
    coming, memories, later = users_coming(config, cluster, users_of(events)), [], 0
    stored: list[tuple[str, dict]] = []
    for tenant, user in users_of(events):
        before = cluster.records("entity", tenant, user)
        if deferred((tenant, user), coming, before, config.until):
            later += 1
            continue
        memories += cluster.records("l1", tenant, user)
        stored += [("entity", e) for e in before]
        stored += [("relation", r) for r in cluster.records("relation", tenant, user)]
    entities, relations = build_graph(memories, entity_extractor())
    fresh = {(r.tenant, r.id) for r in (*entities, *relations)}
    retired = [Tombstone(tenant=old["tenant"], target_kind=kind, target_id=old["id"],
                         reason="no longer named").to_dict()
               for kind, old in stored if (old["tenant"], old["id"]) not in fresh]
    before_by_id = {(old["tenant"], old["id"]): old for _, old in stored}
    changed = [r for r in (*(e.to_dict() for e in entities), *(r.to_dict() for r in relations))
               if not unchanged(r, before_by_id.get((r["tenant"], r["id"])))]
    cluster.commit(changed + retired)
    return memories, entities, relations, retired, later, len(changed)


@dg.asset(key=keys.MEMORY_GRAPH, deps=[keys.L1_MEMORIES], partitions_def=PARTITIONS,
          group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.GRAPH_EDGES_RESOLVE, asset=keys.MEMORY_GRAPH)])
def memory_graph(context: dg.AssetExecutionContext, config: LogRange,
                 cluster: ClusterResource) -> dg.MaterializeResult:
    """Entities (people, places, things) named in the memories of the users this run touches,
    with `mentioned_in` edges to memories and weighted `co_occurs` edges between entities, each
    edge naming the events it rests on. Ids are stable: reruns update, never duplicate; what the
    users' memories no longer name (or named under ids of an older derivation) is retired."""
    started = time.perf_counter()
    events = select_events(context, config, cluster)
    with cluster.leased(context, users_of(events)) as waited:
        memories, entities, relations, retired, later, changed = derive_and_commit(
            config, events, cluster)
    known = {e.id for e in entities} | {m["id"] for m in memories}
    dangling = [r.id for r in relations if r.source not in known or r.target not in known]
    return dg.MaterializeResult(
        metadata={**range_metadata(config, len(memories), len(entities) + len(relations),
                                   time.perf_counter() - started),
                  "entities": len(entities), "relations": len(relations),
                  "retired": len(retired), "changed": changed, "users_deferred": later,
                  "lease_wait_s": round(waited, 3)},
        check_results=[dg.AssetCheckResult(check_name=keys.GRAPH_EDGES_RESOLVE,
                                           passed=not dangling,
                                           metadata={"dangling_edges": len(dangling)})])
