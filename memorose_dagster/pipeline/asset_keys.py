"""Asset keys and check names, shared by ``assets/`` and ``sensors/``."""

import dagster as dg

L0_EVENTS = dg.AssetKey("l0_events")
L1_MEMORIES = dg.AssetKey("l1_memories")
MEMORY_GRAPH = dg.AssetKey("memory_graph")
L2_INSIGHTS = dg.AssetKey("l2_insights")
MEMORY_ASSETS = [L0_EVENTS, L1_MEMORIES, MEMORY_GRAPH, L2_INSIGHTS]
MEMORY_DECAY = dg.AssetKey("memory_decay")  # on its own schedule, not in memory_job

L0_ALL_EMBEDDED = "l0_events_all_embedded"
L1_HAS_PROVENANCE = "l1_memories_have_provenance"
GRAPH_EDGES_RESOLVE = "memory_graph_edges_resolve"
L2_HAS_MEMBERS = "l2_insights_have_members"
DECAY_SPARES_PROTECTED = "memory_decay_spares_protected"

# The lake: every layer as parquet, one asset per table, after the layers it reads.
LAKE_TABLES = {"events": [L0_EVENTS], "memories": [L1_MEMORIES], "insights": [L2_INSIGHTS],
               "entities": [MEMORY_GRAPH], "relations": [MEMORY_GRAPH],
               "vectors": [L0_EVENTS, L1_MEMORIES, L2_INSIGHTS],
               "tombstones": [L1_MEMORIES, L2_INSIGHTS, MEMORY_DECAY],
               "access": [L1_MEMORIES]}
LAKE_ASSETS = {table: dg.AssetKey(f"lake_{table}") for table in LAKE_TABLES}
MEMORY_AUDIT = dg.AssetKey("memory_audit")  # DuckDB audits over the lake, as checks
AUDIT_CHECKS = {name: f"memory_audit_{name}" for name in (
    "provenance", "integrity", "consistency", "isolation", "freshness", "supersede",
    "forgetting")}
