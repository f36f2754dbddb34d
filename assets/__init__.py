"""Dagster assets, one module per data product."""

from assets.audit import memory_audit
from assets.l0_events import l0_events
from assets.l1_memories import l1_memories
from assets.l2_insights import l2_insights
from assets.lake import memory_lake
from assets.memory_decay import memory_decay
from assets.memory_graph import memory_graph

ALL_ASSETS = [l0_events, l1_memories, memory_graph, l2_insights, memory_decay]
# The lake and its audits read the layers above and need a LakeResource besides the cluster.
LAKE_ASSETS = [memory_lake, memory_audit]
