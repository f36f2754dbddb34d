"""``memorose reindex``: drop Tantivy and LanceDB and rebuild both from RocksDB."""

from __future__ import annotations

import shutil
from pathlib import Path

from memorose_dagster.cli import preflight
from memorose_dagster.errors import StartupError


def reindex(home: Path) -> int:
    """Rebuild Tantivy and LanceDB from RocksDB. The node must be stopped."""
    if not (home / "rocksdb").is_dir():
        raise StartupError(f"{home} holds no memorose data (no rocksdb/ in it): check --data-dir")
    preflight.store_not_in_use(home, "stop the node first; reindex rebuilds a stopped node's "
                                     "indexes")
    # Only now the indexes' libraries: LanceDB's import alone takes ~1.7 s, and what stops the
    # command is said before it (a loaded machine took 10-13 s to say it with them first).
    from memorose_dagster.index.fulltext import FullTextIndex
    from memorose_dagster.index.vectors import VectorIndex
    from memorose_dagster.log.store import Store
    from memorose_dagster.models.provider import make_embedder
    from memorose_dagster.node.indexer import Indexer

    for derived in ("tantivy", "lancedb"):  # dropped first: a damaged one may not even open
        shutil.rmtree(home / derived, ignore_errors=True)
    store = Store(home / "rocksdb")
    embedder = make_embedder()
    indexer = Indexer(store, FullTextIndex(home / "tantivy"),
                      VectorIndex(home / "lancedb", embedder.dim, embedder.name),
                      home / "indexed.watermark")
    indexer.reset()
    entries = indexer.catch_up()
    indexer.vectors.optimize()
    print(f"reindexed {entries} log entries: {indexer.fulltext.num_docs()} documents in Tantivy, "
          f"{indexer.vectors.count()} vectors in LanceDB")
    indexer.fulltext.close()
    store.close()
    return 0
