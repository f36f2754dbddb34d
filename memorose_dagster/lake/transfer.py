"""Export a tenant (or one user) from a node into an archive, and import an archive into a
node: events through ``/api/v1/events/batch`` with their own ids, everything derived through
``/api/v1/admin/commit`` (vectors included), so nothing is consolidated again and retrieval
ranks the same. Every step is idempotent: an interrupted import is simply run again."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from memorose_dagster.lake import archive
from memorose_dagster.lake.build import LakeSource, read_kind
from memorose_dagster.lake.tables import TABLES, frame, to_records

CHUNK = 500  # events per batch, records per log command


class Target(Protocol):
    def whoami(self) -> dict[str, Any]: ...

    def ingest_batch(self, events: list[dict[str, Any]]) -> list[str]: ...

    def commit(self, records: list[dict[str, Any]]) -> int: ...

    def list_records(self, kind: str, user_id: str, tenant: str = "default",
                     streams: set[str] | None = None) -> list[dict[str, Any]]: ...


class Progress:
    """``label done/total`` on stderr, one line rewritten in place."""

    def __init__(self, label: str, total: int, quiet: bool = False):
        self.label, self.total, self.done, self.quiet = label, total, 0, quiet

    def add(self, n: int) -> None:
        self.done += n
        if not self.quiet:
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.label:<11} {self.done:>9,}/{self.total:,}", end=end,
                  file=sys.stderr, flush=True)


def _bytes(record: dict[str, Any]) -> dict[str, Any]:
    if isinstance(record.get("values"), str):  # over HTTP, vector values come as base64
        return {**record, "values": base64.b64decode(record["values"])}
    return record


def tenant_records(source: LakeSource, tenant: str, table: str,
                   user: str | None = None) -> list[dict[str, Any]]:
    """Every record of ``table`` in ``tenant`` (of ``user``), vectors with their values."""
    kind = TABLES[table][0]
    records = [_bytes(r) for r in read_kind(source, kind, tenant=tenant, values=True)]
    if user is None:
        return records
    if kind == "tombstone":
        return []  # a tombstone's target is gone: whose it was is not known
    return [r for r in records if r.get("user_id") == user]


def tenant_digest(source: LakeSource, tenant: str, user: str | None = None) -> str:
    return archive.digest(r for table in TABLES
                          for r in tenant_records(source, tenant, table, user))


def export(source: LakeSource, tenant: str, directory: Path, user: str | None = None,
           quiet: bool = False) -> dict[str, Any]:
    """Write ``tenant`` (or ``user`` in it) as an archive in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = {}
    for table in archive.ORDER:
        records = tenant_records(source, tenant, table, user)
        Progress(f"export {table}", len(records), quiet).add(len(records))
        tables[table] = archive.write_table(directory, table, frame(table, records,
                                                                    with_values=True))
    return archive.write_manifest(directory, tenant, user, tables)


class WrongTenant(Exception):
    """The key events would be ingested with does not write into the import's tenant."""


def check_tenant(target: Target, tenant: str) -> None:
    """Events enter through the ingest of the key they are sent with, into that key's tenant:
    refuse before anything is imported unless that tenant is ``tenant``."""
    who = target.whoami()
    if who["role"] == "admin":
        raise WrongTenant(f"events are ingested with a tenant key, not the admin key: set "
                          f"MEMOROSE_API_KEY to a key of tenant {tenant!r}")
    if who["tenant"] != tenant:
        fix = (f"import with --tenant {who['tenant']}, or turn API keys on and set "
               f"MEMOROSE_API_KEY to a key of tenant {tenant!r}") if who["role"] == "open" \
            else f"use a key of tenant {tenant!r}"
        said = "this node has no API keys: events land in" if who["role"] == "open" \
            else "MEMOROSE_API_KEY reaches"
        raise WrongTenant(f"{said} tenant {who['tenant']!r}, not {tenant!r}: {fix}")
    if who["read_only"]:
        raise WrongTenant(f"MEMOROSE_API_KEY is read-only: use a key of tenant {tenant!r} "
                          "that can write")


def _event_body(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("event_id", "user_id", "stream_id", "content",
                                  "content_type", "timestamp", "metadata")}


def _access_deltas(target: Target, tenant: str,
                   totals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Access counts are added up by the state machine: commit only what is missing, so a
    second import adds nothing."""
    out = []
    for user in sorted({t["user_id"] for t in totals}):
        have = {a["record_id"]: a["count"] for a in target.list_records("access", user, tenant)}
        out += [{**t, "count": t["count"] - have.get(t["record_id"], 0)} for t in totals
                if t["user_id"] == user and t["count"] > have.get(t["record_id"], 0)]
    return out


def import_archive(target: Target, directory: Path, tenant: str | None = None,
                   quiet: bool = False) -> dict[str, int]:
    """Import a verified archive into ``tenant`` (default: the archive's): events through the
    ingest of ``target``'s key (whose tenant must be ``tenant``: ``WrongTenant`` otherwise,
    before anything is sent), the rest with their ``tenant`` rewritten. Returns records sent
    per table."""
    manifest, frames = archive.verify(directory)
    tenant = tenant or manifest["tenant"]
    if frames.get("events", pl.DataFrame()).height:
        check_tenant(target, tenant)
    sent = {}
    for table in archive.ORDER:
        df = frames.get(table, pl.DataFrame())
        records = [{**r, "tenant": tenant} for r in to_records(table, df)] if df.height else []
        if table == "access":
            records = _access_deltas(target, tenant, records)
        progress = Progress(f"import {table}", len(records), quiet)
        for i in range(0, len(records), CHUNK):
            chunk = records[i:i + CHUNK]
            if table == "events":
                target.ingest_batch([_event_body(e) for e in chunk])
            else:
                target.commit(chunk)
            progress.add(len(chunk))
        sent[table] = len(records)
    return sent
