"""What a node checks in its data directory before it opens anything.

A damaged file stops the start with a ``StartupError`` that names the file and says what to do,
instead of a traceback at every restart or, worse, a node that quietly starts empty or diverged:
RocksDB with ``create_if_missing`` makes a new empty database where CURRENT is gone, and
pysyncobj logs a snapshot it cannot read and goes on without it. Derived data is the exception:
a missing Tantivy or LanceDB directory is rebuilt from RocksDB at start.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path

from pysyncobj.pickle import loads

from memorose_dagster.errors import StartupError
from memorose_dagster.log.faults import FaultFile
from memorose_dagster.log.journal import journal_problem
from memorose_dagster.log.store import Store
from memorose_dagster.records import unpack

log = logging.getLogger("memorose.node")

FORMAT = 1  # the layout of a data directory; bump it when a change needs a migration
FORMAT_FILE = "FORMAT"
FORMAT_TEXT = f"memorose data format {FORMAT}\n"


def said(exc: BaseException) -> str:
    """An exception's text on one line (the command line prints a StartupError as one)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def reseed(home: Path) -> str:
    return (f"if this node is one of several replicas, re-seed it from the others: stop it, move "
            f"{home} away (keep it for inspection), create {home} again holding only "
            "cluster.secret (and memorose.toml, if used), and start it with the same --peers: "
            f"the leader sends it a snapshot. A standalone node has no peer to copy from: "
            f"restore {home} from a backup")


def check_data_dir(home: Path) -> None:
    """Raise ``StartupError`` for a damaged or foreign data directory; mark a new one."""
    _check_format(home)
    raft = home / "raft"
    journal = raft / "journal"
    if journal.exists():
        problem = journal_problem(str(journal))
        if problem is not None:
            raise StartupError(f"the Raft journal {journal} is damaged ({problem}); "
                               + reseed(home))
    meta = raft / "journal.meta"
    if meta.exists():
        try:
            ok = isinstance(loads(meta.read_bytes()), dict)
        except Exception:  # pickle raises whatever the bytes make it raise
            ok = False
        if not ok:  # pysyncobj would start at term 0 with no vote: Raft needs them kept
            raise StartupError(f"the Raft term file {meta} is damaged; " + reseed(home))
    snapshot = raft / "snapshot.tar"
    if snapshot.exists():
        _check_snapshot(snapshot, home)
    db = home / "rocksdb"
    if db.is_dir() and any(db.iterdir()) and not (db / "CURRENT").exists():
        raise StartupError(f"RocksDB at {db} has files but no CURRENT file, so it would open as "
                           "a new, empty database; " + reseed(home))
    _rebuild_missing_indexes(home)


def _check_format(home: Path) -> None:
    marker = home / FORMAT_FILE
    if marker.exists():
        found = marker.read_text(errors="replace").strip()
        if found != FORMAT_TEXT.strip():
            raise StartupError(f"{home} holds another version's data ({marker} says {found!r}; "
                               f"this Memorose reads {FORMAT_TEXT.strip()!r}): start the version "
                               "that wrote it, or give this one another --data-dir")
        return
    # New, or written before this file existed (format 1): mark it either way.
    home.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(FORMAT_TEXT)
    tmp.replace(marker)


def _check_snapshot(path: Path, home: Path) -> None:
    try:
        with tarfile.open(path, "r:") as tar:  # written uncompressed
            first = tar.next()
            member = tar.extractfile(first) if first is not None else None
            if first is None or first.name != "raft.msgpack" or member is None:
                raise ValueError("no raft.msgpack at its start")
            meta = unpack(member.read())
            if not isinstance(meta, dict) or "last" not in meta:
                raise ValueError("raft.msgpack holds no log position")
    except (OSError, ValueError, tarfile.TarError) as exc:
        raise StartupError(f"the snapshot {path} is damaged ({said(exc)}); "
                           + reseed(home)) from exc


def _rebuild_missing_indexes(home: Path) -> None:
    """Tantivy and LanceDB are derived: when either directory is gone, index everything again
    (the indexer's watermark would otherwise skip what the lost directory held)."""
    watermark = home / "indexed.watermark"
    missing = [name for name in ("tantivy", "lancedb") if not (home / name).is_dir()]
    if missing and watermark.exists():
        log.warning("%s missing under %s: rebuilding the indexes from RocksDB",
                    " and ".join(missing), home)
        watermark.write_text("0")


def open_store(home: Path, fault_file: FaultFile | None = None) -> Store:
    path = home / "rocksdb"
    try:
        return Store(path, fault_file)
    except Exception as exc:  # rocksdict raises a bare Exception ("Corruption: ...")
        raise StartupError(f"RocksDB at {path} cannot be opened ({said(exc)}); "
                           + reseed(home)) from exc


def index_error(path: Path, home: Path, exc: Exception) -> StartupError:
    return StartupError(f"the index at {path} cannot be opened ({said(exc)}); it is derived "
                        f"data: rebuild it with `memorose reindex --data-dir {home}` (node "
                        f"stopped), or move {path} away and the node rebuilds it at start")
