"""Where the lake's files are: ``{root}/{table}/tenant={tenant}/day={day}/part-0.parquet``.

The tenant is percent-encoded in the path (a tenant may hold ``/``); it is also a column inside
every file, so readers never parse paths. A partition is replaced whole, written to a temporary
name and renamed into place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl

FILE = "part-0.parquet"


def default_root(env: dict[str, str] | None = None) -> Path:
    """``$MEMOROSE_LAKE``, else ``$MEMOROSE_HOME/lake`` (``./data/lake``)."""
    env = os.environ if env is None else env
    if env.get("MEMOROSE_LAKE"):
        return Path(env["MEMOROSE_LAKE"])
    return Path(env.get("MEMOROSE_HOME", "data")) / "lake"


def partition_path(root: Path, table: str, tenant: str, day: str) -> Path:
    return root / table / f"tenant={quote(tenant, safe='')}" / f"day={day}" / FILE


def table_glob(root: Path, table: str) -> str:
    return str(root / table / "*" / "*" / FILE)


def partitions(root: Path, table: str) -> set[tuple[str, str]]:
    """Every (tenant, day) with a file in ``table``."""
    found = set()
    for path in (root / table).glob(f"tenant=*/day=*/{FILE}"):
        tenant = unquote(path.parent.parent.name.removeprefix("tenant="))
        found.add((tenant, path.parent.name.removeprefix("day=")))
    return found


def read_partition(root: Path, table: str, tenant: str, day: str) -> pl.DataFrame | None:
    """The rows of one partition's file, or None when it has none."""
    path = partition_path(root, table, tenant, day)
    return pl.read_parquet(path, hive_partitioning=False) if path.exists() else None


def write_partitions(root: Path, table: str, df: pl.DataFrame,
                     touched: set[tuple[str, str]]) -> dict[str, int]:
    """Replace the files of the ``touched`` partitions with the rows of ``df`` that fall in
    them; a touched partition with no rows loses its file. Returns files written and removed."""
    groups = {key: part for key, part in df.partition_by(["tenant", "day"], as_dict=True).items()}
    written = removed = 0
    for tenant, day in sorted(touched):
        path = partition_path(root, table, tenant, day)
        part = groups.get((tenant, day))
        if part is None or part.is_empty():
            if path.exists():
                path.unlink()
                _prune(path.parent, root)
                removed += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        part.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
        written += 1
    return {"files_written": written, "files_removed": removed}


def _prune(directory: Path, root: Path) -> None:
    """Remove empty partition directories up to the table's."""
    while directory != root and directory.parent != root and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def drop(root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
