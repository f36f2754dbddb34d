"""The running node: composes the log, the indexes and the memory logic (``node.Node``)."""
