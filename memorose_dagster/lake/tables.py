"""The lake's tables: one per record kind, their columns read off the record types.

A table's schema is derived from the dataclass in ``records.py`` (a new field there is a new
column here), plus ``day``: the ingest day (UTC) of the earliest event a record rests on, which
is also its partition. Rows are sorted by their id so that the same records always make the
same file. ``metadata`` (free-form, as sent) is kept as JSON text with sorted keys.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import polars as pl

from memorose_dagster.records import RECORD_TYPES

UNDATED = "undated"  # the partition of records with no event to date them by

# table name -> (record kind, id column)
TABLES: dict[str, tuple[str, str]] = {
    "events": ("event", "event_id"),
    "memories": ("l1", "id"),
    "insights": ("l2", "id"),
    "entities": ("entity", "id"),
    "relations": ("relation", "id"),
    "vectors": ("vector", "record_id"),
    "tombstones": ("tombstone", "target_id"),
    "access": ("access", "record_id"),
}
TABLE_OF_KIND = {kind: name for name, (kind, _) in TABLES.items()}

_DTYPES: dict[str, pl.DataType] = {
    "str": pl.Utf8(), "float": pl.Float64(), "int": pl.Int64(), "bool": pl.Boolean(),
    "list[str]": pl.List(pl.Utf8()), "dict[str, Any]": pl.Utf8(), "float | None": pl.Float64(),
    "str | None": pl.Utf8(), "bytes": pl.Binary(),
}
JSON_COLUMNS = frozenset({"metadata"})
# Vectors in the lake carry what describes them, not their values (the archive keeps those).
VECTOR_META = {"user_id": pl.Utf8(), "dim": pl.Int64(), "norm": pl.Float64()}


def schema(table: str, with_values: bool = False) -> dict[str, pl.DataType]:
    """Columns of ``table``: tenant and day first, then the record's fields in order."""
    cls = RECORD_TYPES[TABLES[table][0]]
    columns: dict[str, pl.DataType] = {"tenant": pl.Utf8(), "day": pl.Utf8()}
    for f in fields(cls):
        if f.name == "values" and not with_values:
            continue
        columns.setdefault(f.name, _DTYPES[str(f.type)])
    if table == "vectors":
        columns.update(VECTOR_META)
    return columns


def to_row(record: dict[str, Any], columns: dict[str, pl.DataType]) -> dict[str, Any]:
    row = {name: record.get(name) for name in columns}
    for name in JSON_COLUMNS & row.keys():
        row[name] = json.dumps(row[name] or {}, sort_keys=True, ensure_ascii=False)
    return row


def frame(table: str, records: list[dict[str, Any]], with_values: bool = False) -> pl.DataFrame:
    """Records of one table (each with its ``day``) as a frame in the table's schema, sorted
    by tenant, day and id: the same records always give the same frame."""
    columns = schema(table, with_values)
    return ordered(table, pl.DataFrame([to_row(r, columns) for r in records], schema=columns,
                                       orient="row"))


def ordered(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """Rows in the lake's order: tenant, day, id (a tombstone's id names its target, which
    can be of two kinds: the kind breaks the tie)."""
    return df.sort(["tenant", "day", TABLES[table][1],
                    *(["target_kind"] if table == "tombstones" else [])])


def to_records(table: str, df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows back into record dicts (the inverse of ``frame``, without ``day``)."""
    kind = TABLES[table][0]
    cls_fields = {f.name for f in fields(RECORD_TYPES[kind])}
    out = []
    for row in df.iter_rows(named=True):
        record = {k: v for k, v in row.items() if k in cls_fields}
        for name in JSON_COLUMNS & record.keys():
            record[name] = json.loads(record[name])
        record["kind"] = kind
        out.append(record)
    return out
