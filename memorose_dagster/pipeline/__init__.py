"""Dagster glue: resources, asset keys, partitions and the one Definitions root."""
