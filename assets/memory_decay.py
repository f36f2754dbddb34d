"""Decay: memories that have faded below the floor are pruned, with their dependents."""


import time
from typing import Any

import dagster as dg
from pydantic import Field

from assets.selection import embed
from memorose_dagster.memory.forget import (
    FLOOR,
    HALF_LIFE_DAYS,
    PROTECT_IMPORTANCE,
    REASON_DECAYED,
    cascade,
    is_protected,
    select_prunable,
    user_clock,
)
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource


class DecayConfig(dg.Config):
    half_life_days: float = Field(default=HALF_LIFE_DAYS, gt=0,
                                  description="strength halves this often")
    floor: float = Field(default=FLOOR, ge=0, le=1, description="prune below this strength")
    protect_importance: float = Field(default=PROTECT_IMPORTANCE, ge=0, le=1, description=(
        "memories at or above this importance are never pruned (nor pinned ones)"))


@dg.asset(key=keys.MEMORY_DECAY, deps=[keys.L2_INSIGHTS], group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.DECAY_SPARES_PROTECTED, asset=keys.MEMORY_DECAY)])
def memory_decay(context: dg.AssetExecutionContext, config: DecayConfig,
                 cluster: ClusterResource, model: ModelResource) -> dg.MaterializeResult:
    """Temporal decay of L1 memories: importance halving every `half_life_days` since a memory
    was created or last retrieved (retrievals also boost it), measured on the user's clock: up to
    the user's latest memory or retrieval, so time away from Memorose does not age anything.
    Memories below `floor` get a `decayed` tombstone, with the insights, entities and relations
    resting on them recomputed or retired in the same command per user. Pinned and
    high-importance memories are kept."""
    started = time.perf_counter()
    now = time.time()
    examined, pruned, removed, protected_pruned = 0, 0, 0, []
    for tenant, user in cluster.users():
        with cluster.leased(context, [(tenant, user)]):  # no run derives them meanwhile
            memories = cluster.records("l1", tenant, user)
            examined += len(memories)
            access = {a["record_id"]: a for a in cluster.records("access", tenant, user)}
            doomed = select_prunable(memories, user_clock(memories, access, now), config.floor,
                                     config.half_life_days, config.protect_importance, access)
            if not doomed:
                continue
            related = {kind: cluster.records(kind, tenant, user)
                       for kind in ("l2", "entity", "relation")}
            plan = cascade(doomed, {"l1": memories, **related}, REASON_DECAYED)
            vectors = [v.to_dict() for v in embed(plan.to_embed(), model.embedder())]
            cluster.commit(plan.records() + vectors)
            pruned += len(doomed)
            removed += len(plan.tombstones)
            protected_pruned += _protected_among(memories, plan.gone("l1"),
                                                 config.protect_importance)
    return dg.MaterializeResult(
        metadata={"examined": examined, "pruned": pruned, "removed_with_dependents": removed,
                  "half_life_days": config.half_life_days, "floor": config.floor,
                  "seconds": round(time.perf_counter() - started, 3)},
        check_results=[dg.AssetCheckResult(
            check_name=keys.DECAY_SPARES_PROTECTED, passed=not protected_pruned,
            metadata={"protected_pruned": len(protected_pruned)})])


def _protected_among(memories: list[dict[str, Any]], gone: set[str],
                     protect_importance: float) -> list[str]:
    """Pinned or protected memories the committed plan removed: must be none."""
    return [m["id"] for m in memories
            if m["id"] in gone and is_protected(m, protect_importance)]
