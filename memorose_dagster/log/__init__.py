"""The replicated log: RocksDB key layout, the state machine, and the pysyncobj glue."""
