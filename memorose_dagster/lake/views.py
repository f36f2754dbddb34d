"""DuckDB over the lake: one view per table (an empty one in the table's schema when the lake
has no file of it yet), plus the helpers the audits and operators use in SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from memorose_dagster.ids import id_time_ms
from memorose_dagster.lake import files
from memorose_dagster.lake.tables import TABLES, frame
from memorose_dagster.memory.consolidate import is_noise


def _ulid_ms(event_id: str) -> int | None:
    try:
        return id_time_ms(event_id)
    except ValueError:
        return None


def connect(root: Path, census: list[dict[str, Any]] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per lake table, ``census_counts`` and ``census_strays``
    from node censuses, and the functions ``ulid_ms(id)`` and ``is_noise(text)``."""
    con = duckdb.connect()
    for table in TABLES:
        if files.partitions(root, table):
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                        f"'{files.table_glob(root, table)}', union_by_name = true, "
                        "hive_partitioning = false)")
        else:
            con.register(f"{table}_empty", frame(table, []))
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM {table}_empty")
    con.create_function("ulid_ms", _ulid_ms, ["VARCHAR"], "BIGINT", null_handling="special")
    con.create_function("is_noise", is_noise, ["VARCHAR"], "BOOLEAN")
    register_census(con, census or [])
    return con


COUNT_COLUMNS = {"node_id": pl.Utf8(), "tenant": pl.Utf8(), "user_id": pl.Utf8(),
                 "layer": pl.Utf8(), "rocksdb": pl.Int64(), "rocksdb_vectors": pl.Int64(),
                 "tantivy": pl.Int64(), "lancedb": pl.Int64()}
STRAY_COLUMNS = {"node_id": pl.Utf8(), "tenant": pl.Utf8(), "user_id": pl.Utf8(),
                 "layer": pl.Utf8(), "index": pl.Utf8(), "id": pl.Utf8(),
                 "tombstoned": pl.Boolean()}


def register_census(con: duckdb.DuckDBPyConnection, census: list[dict[str, Any]]) -> None:
    counts = [{**row, "node_id": c["node_id"]} for c in census for row in c["counts"]]
    strays = [{**row, "node_id": c["node_id"]} for c in census for row in c["strays"]]
    con.register("census_counts", pl.DataFrame(counts, schema=COUNT_COLUMNS, orient="row"))
    con.register("census_strays", pl.DataFrame(strays, schema=STRAY_COLUMNS, orient="row"))
