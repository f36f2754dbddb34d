"""The export archive: a directory of parquet files (one per table, in the lake's schemas,
vectors with their values) and ``manifest.json`` naming the format, its version, the tenant
(and user) and, per file, its rows, size and SHA-256.

An archive is checked whole before anything is imported: a newer version, a missing or
truncated file, a checksum or row-count mismatch is refused with an ``ArchiveError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from memorose_dagster.lake.tables import TABLES

FORMAT = "memorose-archive"
VERSION = 1
MANIFEST = "manifest.json"
# Import order: tombstones first (a record re-created after a non-final tombstone must
# survive it), events before what rests on them, vectors once their targets exist, and access
# counts last (they count only for records that are there).
ORDER = ("tombstones", "events", "memories", "insights", "entities", "relations", "vectors",
         "access")


class ArchiveError(Exception):
    """An archive this Memorose cannot import, with the reason."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_table(directory: Path, table: str, df: pl.DataFrame) -> dict[str, Any]:
    path = directory / f"{table}.parquet"
    df.write_parquet(path, compression="zstd")
    return {"file": path.name, "rows": df.height, "bytes": path.stat().st_size,
            "sha256": sha256(path)}


def write_manifest(directory: Path, tenant: str, user: str | None,
                   tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    manifest = {"format": FORMAT, "version": VERSION, "tenant": tenant, "user": user,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "kinds": {t: TABLES[t][0] for t in tables}, "tables": tables,
                "records": sum(t["rows"] for t in tables.values())}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArchiveError(f"{directory}: no {MANIFEST}: not a Memorose archive") from exc
    except json.JSONDecodeError as exc:
        raise ArchiveError(f"{path}: not valid JSON ({exc}): truncated or damaged") from exc
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ArchiveError(f"{path}: archive version {version} is newer than this Memorose "
                           f"reads (up to {VERSION}): import it with a newer Memorose")
    unknown = set(manifest.get("tables", {})) - set(TABLES)
    if unknown:
        raise ArchiveError(f"{path}: unknown tables {sorted(unknown)}")
    return manifest


def verify(directory: Path) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """The manifest and every table, once each file's size, checksum and rows match."""
    manifest = read_manifest(directory)
    frames = {}
    for table, entry in manifest["tables"].items():
        path = directory / entry["file"]
        if not path.exists():
            raise ArchiveError(f"{path}: missing")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ArchiveError(f"{path}: {size} bytes, the manifest says {entry['bytes']}: "
                               "truncated or changed")
        if sha256(path) != entry["sha256"]:
            raise ArchiveError(f"{path}: checksum mismatch (SHA-256 differs from the manifest)")
        frames[table] = pl.read_parquet(path)
        if frames[table].height != entry["rows"]:
            raise ArchiveError(f"{path}: {frames[table].height} rows, the manifest says "
                               f"{entry['rows']}")
    return manifest, frames


def digest(records: Iterable[dict[str, Any]]) -> str:
    """SHA-256 over records as content, without where they landed (the log index, and the
    tenant: a digest is taken over one tenant's records): equal digests mean the same records,
    wherever and into whichever tenant they were committed."""
    lines = []
    for record in records:
        clean = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in record.items()
                 if k not in ("log_index", "day", "tenant")}
        lines.append(json.dumps(clean, sort_keys=True, ensure_ascii=False))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
