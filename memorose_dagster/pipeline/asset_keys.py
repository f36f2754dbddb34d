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
