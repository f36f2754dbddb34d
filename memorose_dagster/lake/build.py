"""Refreshing the lake from a node: which partitions to rewrite, and rewriting them.

Three ways: everything (a full rebuild; partitions the node no longer holds are removed), the
days of a backfill (every tenant's files of those days, read from the node whole), or a log
range, merged in proportion to the change: the (tenant, id)s its entries wrote, plus the
lake's entities naming one of them (an entity is dated by its memories), are read back from
the node by key; in each table their old rows leave whatever partitions held them (a record
whose earliest event was forgotten moves to a later day; a tombstone's target leaves its day)
and their current rows go in. Every other row of a rewritten partition is the lake's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl

from memorose_dagster.lake import files
from memorose_dagster.lake.tables import TABLE_OF_KIND, TABLES, UNDATED, frame, ordered

PAGE = 5000
ROWS_CHUNK = 2000  # ids per read by key


class LakeSource(Protocol):
    def lake_records(self, kind: str, days: list[str] | None = None, tenant: str | None = None,
                     after: str | None = None, limit: int = 2000,
                     values: bool = False) -> dict[str, Any]: ...

    def lake_touched(self, after: int, until: int | None = None,
                     limit: int = 2000) -> dict[str, Any]: ...

    def lake_rows(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]: ...


def read_kind(source: LakeSource, kind: str, days: set[str] | None = None,
              tenant: str | None = None, values: bool = False) -> Iterator[dict[str, Any]]:
    """Every record of ``kind`` (of ``days``, ``tenant``), page by page."""
    after = None
    while True:
        body = source.lake_records(kind, sorted(days) if days else None, tenant, after, PAGE,
                                   values)
        yield from body["records"]
        if body["next"] is None:
            return
        after = body["next"]


def touched_by_range(source: LakeSource, after: int,
                     until: int | None) -> set[tuple[str, str]]:
    """The (tenant, id)s written by log entries in (after, until]."""
    ids: set[tuple[str, str]] = set()
    cursor = after
    while until is None or cursor < until:
        body = source.lake_touched(cursor, until, PAGE)
        ids |= {(t, i) for t, i in body["ids"]}
        if body["next_cursor"] == cursor:
            break
        cursor = body["next_cursor"]
    return ids


def _wanted(ids: set[tuple[str, str]]) -> pl.DataFrame:
    pairs = sorted(ids)
    return pl.DataFrame({"tenant": [t for t, _ in pairs], "id": [i for _, i in pairs]},
                        schema={"tenant": pl.Utf8(), "id": pl.Utf8()})


def _lake_query(con: duckdb.DuckDBPyConnection, root: Path, table: str,
                query: str) -> set[tuple[str, str]]:
    """``query`` over ``table``'s files (as ``t``) with ``wanted``: none when it has none."""
    if not files.partitions(root, table):
        return set()
    source = f"read_parquet('{files.table_glob(root, table)}', hive_partitioning = false)"
    return set(con.execute(query.format(t=source)).fetchall())


def entities_naming(con: duckdb.DuckDBPyConnection, root: Path) -> set[tuple[str, str]]:
    """The lake's entities naming one of the ``wanted`` ids among their memories."""
    return _lake_query(con, root, "entities", """
        SELECT DISTINCT e.tenant, e.id FROM (SELECT tenant, id, unnest(memory_ids) AS mid
                                             FROM {t}) e
        JOIN wanted w ON w.tenant = e.tenant AND w.id = e.mid""")


def holding(con: duckdb.DuckDBPyConnection, root: Path, table: str) -> set[tuple[str, str]]:
    """The (tenant, day) partitions of ``table`` holding a row of one of the ``wanted`` ids."""
    return _lake_query(con, root, table, f"""
        SELECT DISTINCT t.tenant, t.day FROM {{t}} t
        JOIN wanted w ON w.tenant = t.tenant AND w.id = t.{TABLES[table][1]}""")


def rows_by_id(source: LakeSource, ids: set[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """The node's current rows of ``ids``, per table, read by key in chunks."""
    out: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    by_tenant: dict[str, list[str]] = {}
    for tenant, rid in sorted(ids):
        by_tenant.setdefault(tenant, []).append(rid)
    for tenant, rids in by_tenant.items():
        for i in range(0, len(rids), ROWS_CHUNK):
            for row in source.lake_rows(tenant, rids[i:i + ROWS_CHUNK]):
                out[TABLE_OF_KIND[row["kind"]]].append(row)
    return out


def merge_range(source: LakeSource, root: Path, after: int,
                until: int | None) -> dict[str, dict[str, Any]]:
    """Merge what log entries in (after, until] changed into the lake, rewriting only the
    partitions that held or now hold a changed row. Returns per table: rows read from the
    node, rows in the rewritten partitions, files written and removed, seconds."""
    started = time.perf_counter()
    ids = touched_by_range(source, after, until)
    con = duckdb.connect()
    con.register("wanted", _wanted(ids))
    ids |= entities_naming(con, root)
    wanted = _wanted(ids)
    con.register("wanted", wanted)
    rows = rows_by_id(source, ids)
    read_seconds = time.perf_counter() - started
    out: dict[str, dict[str, Any]] = {}
    for table, (_, id_column) in TABLES.items():
        begun = time.perf_counter()
        new = frame(table, rows[table])
        parts = holding(con, root, table) | set(new.select("tenant", "day").unique().iter_rows())
        old = [df for df in (files.read_partition(root, table, t, d) for t, d in parts)
               if df is not None]
        merged = new
        if old:
            kept = pl.concat(old).join(wanted.rename({"id": id_column}), on=["tenant", id_column],
                                       how="anti")
            merged = ordered(table, pl.concat([kept, new]))
        stats = files.write_partitions(root, table, merged, parts)
        out[table] = {"rows": new.height, "partition_rows": merged.height,
                      "partitions": len(parts), **stats,
                      "seconds": round(time.perf_counter() - begun + read_seconds, 3)}
    con.close()
    return out


def refresh(source: LakeSource, root: Path,
            days: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Rewrite the lake's partitions: all (``days`` None) or every tenant's of ``days`` (and
    the undated ones). Returns per table: rows read, files written and removed, seconds."""
    wanted_days = None if days is None else days | {UNDATED}
    out: dict[str, dict[str, Any]] = {}
    for table, (kind, _) in TABLES.items():
        started = time.perf_counter()
        df = frame(table, list(read_kind(source, kind, wanted_days)))
        held = {(t, d) for t, d in df.select("tenant", "day").unique().iter_rows()}
        on_disk = files.partitions(root, table)
        parts = held | {p for p in on_disk if wanted_days is None or p[1] in wanted_days}
        stats = files.write_partitions(root, table, df, parts)
        out[table] = {"rows": df.height, "partitions": len(parts), **stats,
                      "seconds": round(time.perf_counter() - started, 3)}
    return out
