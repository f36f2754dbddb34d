"""Pure memory logic: consolidation, forgetting, graph, insights and ranking (no I/O)."""
