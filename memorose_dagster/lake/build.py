"""Refreshing the lake from a node: which partitions to rewrite, and rewriting them.

Three ways to choose the partitions: everything (a full rebuild; partitions the node no longer
holds are removed), the days of a backfill (every tenant's files of those days), or the
partitions a log range touched: those of the records it wrote, plus those the lake holds any
of their ids in (a record whose earliest event was forgotten moves to a later day; a tombstone's
target leaves the day it was in).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl

from memorose_dagster.lake import files
from memorose_dagster.lake.tables import TABLES, UNDATED, frame

PAGE = 5000


class LakeSource(Protocol):
    def lake_records(self, kind: str, days: list[str] | None = None, tenant: str | None = None,
                     after: str | None = None, limit: int = 2000,
                     values: bool = False) -> dict[str, Any]: ...

    def lake_touched(self, after: int, until: int | None = None,
                     limit: int = 2000) -> dict[str, Any]: ...


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
                     until: int | None) -> tuple[set[tuple[str, str]], set[str]]:
    """The (tenant, day) partitions and ids written by log entries in (after, until]."""
    parts: set[tuple[str, str]] = set()
    ids: set[str] = set()
    cursor = after
    while until is None or cursor < until:
        body = source.lake_touched(cursor, until, PAGE)
        parts |= {(t, d) for t, d in body["touched"]}
        ids |= set(body["ids"])
        if body["next_cursor"] == cursor:
            break
        cursor = body["next_cursor"]
    return parts, ids


def partitions_holding(root: Path, ids: set[str]) -> set[tuple[str, str]]:
    """The (tenant, day) partitions of the lake holding any of ``ids``, in any table."""
    if not ids:
        return set()
    con = duckdb.connect()
    con.register("wanted", pl.DataFrame({"id": sorted(ids)}))
    found: set[tuple[str, str]] = set()
    for table, (_, id_column) in TABLES.items():
        if not files.partitions(root, table):
            continue
        found |= set(con.execute(
            f"SELECT DISTINCT tenant, day FROM read_parquet('{files.table_glob(root, table)}', "
            f"hive_partitioning = false) "
            f"WHERE {id_column} IN (SELECT id FROM wanted)").fetchall())
    con.close()
    return found


def refresh(source: LakeSource, root: Path, days: set[str] | None = None,
            touched: set[tuple[str, str]] | None = None) -> dict[str, dict[str, Any]]:
    """Rewrite the lake's partitions: all (both None), every tenant's of ``days``, or exactly
    ``touched``. Returns per table: rows read, files written and removed, seconds."""
    wanted_days = days if touched is None else {d for _, d in touched}
    if wanted_days is not None:
        wanted_days = wanted_days | ({UNDATED} if touched is None else set())
    out: dict[str, dict[str, Any]] = {}
    for table, (kind, _) in TABLES.items():
        started = time.perf_counter()
        df = frame(table, list(read_kind(source, kind, wanted_days)))
        held = {(t, d) for t, d in df.select("tenant", "day").unique().iter_rows()}
        if touched is not None:
            parts = touched
        else:
            on_disk = files.partitions(root, table)
            parts = held | {p for p in on_disk if wanted_days is None or p[1] in wanted_days}
        stats = files.write_partitions(root, table, df, parts)
        out[table] = {"rows": df.height, "partitions": len(parts), **stats,
                      "seconds": round(time.perf_counter() - started, 3)}
    return out
