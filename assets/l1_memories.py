"""L1: consolidated memories distilled from new raw events."""


import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg

from assets.selection import (
    EmbedBeside,
    by_stream,
    needs_vector,
    range_metadata,
    read_ahead,
    select_events,
    users_of,
    with_previous,
    with_vectors,
)
from memorose_dagster.memory.consolidate import consolidation, is_noise, memories_for
from memorose_dagster.memory.facts import consolidate_facts
from memorose_dagster.memory.readings import with_readings
from memorose_dagster.models.ner import entity_extractor
from memorose_dagster.pipeline import asset_keys as keys
from memorose_dagster.pipeline.partitions import PARTITIONS, LogRange
from memorose_dagster.pipeline.resources import ClusterResource, ModelResource
from memorose_dagster.records import Tombstone

# Memories embedded at a time: a lot of several batches keeps both of the model's lanes busy
# from the first users on, while the rest are derived (a run makes ~500 memories to embed).
# With batches of 16, lots of 128 against 64: l1_memories over 100k events 174.5 s against
# 181.6-182.3 (realistic.py --big).
EMBED_LOT = 128


def derive(model: ModelResource, events: list[dict[str, Any]],
           streams: dict[str, list[dict[str, Any]]],
           existing: list[dict[str, Any]]) -> tuple[list, list[str]]:
    """The local consolidator, or Gemini's facts when the model provider is Gemini: memories,
    and the ids of existing ones merged into an earlier one."""
    extractor = model.extractor()
    if extractor is None:
        return consolidation(with_previous(events, streams), streams, existing)
    text_events = [e for e in events if e.get("content_type", "text") == "text"]
    facts = extractor.extract_facts(text_events)
    return consolidate_facts(facts, text_events, existing, extractor.decide_updates,
                             extractor.model), []


def probes(targets: list[dict[str, Any]], streams: dict[str, list[dict[str, Any]]]) -> list:
    """Every memory the consolidator may make of ``targets``, before merges: each turn's
    statements with and without the next turn as its reply (whether that turn counts as a
    reply is the consolidator's call; either way, one of the two is what it makes)."""
    position = {e["event_id"]: (sid, i) for sid, evs in streams.items()
                for i, e in enumerate(evs)}
    out = []
    for event in targets:
        if event.get("content_type", "text") != "text" or is_noise(event["content"]):
            continue
        out += memories_for(event, "")
        sid, i = position.get(event["event_id"], (None, 0))
        if sid is not None and i + 1 < len(streams[sid]):
            out += memories_for(event, "", streams[sid][i + 1])
    return out


def existing_for(cluster: ClusterResource, model: ModelResource, tenant: str, user: str,
                 targets: list[dict[str, Any]], streams: dict[str, list[dict[str, Any]]],
                 mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's memories the run needs: on the local path only those its new memories may
    merge into, supersede or retire (read by the node's candidate selection, so a run costs
    what is new, not the user's history); Gemini decides updates over all of them."""
    if model.extractor() is not None:
        return cluster.records("l1", tenant, user)
    made = probes(targets, streams)
    return cluster.l1_candidates(tenant, user, [m.content for m in made], [m.id for m in made],
                                 [e["event_id"] for e in mine])


def derive_and_commit(events: list[dict[str, Any]], cluster: ClusterResource,
                      model: ModelResource) -> tuple[list[dict], list[dict], list]:
    """The range's memories per user, the stored ones they retire, and the vectors of those
    whose text is new; committed (the caller holds the users' lease). The memories that keep
    their stored text (merged into, superseded) are committed while the new texts embed; then
    each new one with its vector in one command; the retired last."""
    with EmbedBeside(model.embedder(), lot=EMBED_LOT) as beside, \
            ThreadPoolExecutor(1, thread_name_prefix="l1-commit") as committer:
        memories, retired = derive_users(events, cluster, model, beside)
        kept_text = committer.submit(cluster.commit_groups, [[m] for m in memories
                                                              if m["id"] not in beside.sent])
        vectors = beside.vectors()
        kept_text.result()
    cluster.commit_groups(with_vectors([m for m in memories if m["id"] in beside.sent], vectors)
                          + [[r] for r in retired])
    return memories, retired, vectors


def read_user(events: list[dict[str, Any]], cluster: ClusterResource, model: ModelResource,
              tenant: str, user: str) -> tuple[list[dict], dict[str, list[dict]], list[dict]]:
    """What deriving one user needs from the node: the user's events of the range, the streams
    they are in, and the stored memories they may touch."""
    mine = [e for e in events if e["user_id"] == user and e["tenant"] == tenant]
    # Context and replies come from the same stream: read only the streams touched.
    streams = by_stream(cluster.records("event", tenant, user, {e["stream_id"] for e in mine}))
    return mine, streams, existing_for(cluster, model, tenant, user,
                                       with_previous(mine, streams), streams, mine)


def derive_users(events: list[dict[str, Any]], cluster: ClusterResource, model: ModelResource,
                 beside: EmbedBeside) -> tuple[list[dict], list[dict]]:
    """Each user's memories and the stored ones they retire; the memories whose text is new go
    to ``beside`` to be embedded while the next user is derived."""
    event_ids = {e["event_id"] for e in events}
    memories, retired, extract = [], [], entity_extractor()
    for (tenant, _), (mine, streams, existing) in read_ahead(
            users_of(events), lambda user: read_user(events, cluster, model, *user)):
        stored = {m["id"]: m for m in existing}
        made, absorbed = derive(model, mine, streams, existing)
        # The graph's and the insights' reading of each statement, made once, stored with it.
        fresh = with_readings([m.to_dict() for m in made], extract)
        merged = set(absorbed)
        kept = {m["id"] for m in fresh} | {m["id"] for m in existing
                                           if not event_ids.issuperset(m["source_event_ids"])}
        retired += [Tombstone(tenant=tenant, target_kind="l1", target_id=old["id"],
                              reason="merged" if old["id"] in merged else "re-derived").to_dict()
                    for old in existing if old["id"] not in kept - merged]
        memories += fresh
        # A merge or a supersede changes a memory but not its text: its vector stays as it is.
        beside.add([m for m in fresh if needs_vector(m, stored.get(m["id"]))])
    return memories, retired


@dg.asset(key=keys.L1_MEMORIES, deps=[keys.L0_EVENTS], partitions_def=PARTITIONS,
          group_name="memory",
          check_specs=[dg.AssetCheckSpec(keys.L1_HAS_PROVENANCE, asset=keys.L1_MEMORIES)])
def l1_memories(context: dg.AssetExecutionContext, config: LogRange, cluster: ClusterResource,
                model: ModelResource) -> dg.MaterializeResult:
    """Consolidated memories (L1): noise dropped, atomic memories (one per statement of an
    informative event) with the turn's other statements and its neighbouring turns as context,
    relative dates resolved, duplicates merged into the earliest (whichever was derived first),
    older values of the same fact superseded, keywords, entities, importance and the ids of the
    events it came from. Ids derive from the source events, so a rerun overwrites in place;
    memories an earlier logic derived only from these events that this one does not produce, and
    later duplicates merged into a memory derived now, are retired."""
    started = time.perf_counter()
    events = select_events(context, config, cluster)
    with cluster.leased(context, users_of(events)) as waited:
        memories, retired, vectors = derive_and_commit(events, cluster, model)
    orphans = [m["id"] for m in memories if not m["source_event_ids"]]
    return dg.MaterializeResult(
        metadata={**range_metadata(config, len(events), len(memories),
                                   time.perf_counter() - started),
                  "retired": len(retired), "embedded": len(vectors),
                  "lease_wait_s": round(waited, 3),
                  **model.usage_metadata()},
        check_results=[dg.AssetCheckResult(check_name=keys.L1_HAS_PROVENANCE,
                                           passed=not orphans,
                                           metadata={"without_provenance": len(orphans)})])
