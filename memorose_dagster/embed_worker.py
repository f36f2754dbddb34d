"""The node's own embedding worker: embeds newly committed text and commits the vectors.

It follows the store's log like the indexer does, from a persisted cursor, and only on the
leader (a follower's worker waits). Vectors enter through the Raft log like any other state.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from memorose_dagster.index.embedding import vector_to_bytes
from memorose_dagster.indexer import record_id
from memorose_dagster.records import LAYER_OF_KIND, Vector

if TYPE_CHECKING:
    from memorose_dagster.node import Node

log = logging.getLogger("memorose.embed")

PAGE = 256
IDLE_WAIT = 0.2


class EmbedWorker:
    def __init__(self, node: Node, cursor_path: Path):
        self._node = node
        self._cursor_path = cursor_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memorose-embed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        cursor = self._read_cursor()
        while not self._stop.is_set():
            try:
                cursor = self._step(cursor)
            except Exception:  # the node stays up; this page is retried after a pause
                log.exception("embedding after log index %d failed", cursor)
                self._stop.wait(1.0)

    def _step(self, cursor: int) -> int:
        node = self._node
        entries = node.store.read_log(cursor, PAGE) if node.is_leader() else []
        if not entries:
            self._stop.wait(IDLE_WAIT)
            return cursor
        texts = [r for _, records in entries for r in records if r["kind"] in LAYER_OF_KIND]
        if texts:
            vectors = node.embedder.embed([r["content"] for r in texts])
            node.submit([Vector(tenant=r["tenant"], record_id=record_id(r),
                                layer=LAYER_OF_KIND[r["kind"]], model=node.embedder.name,
                                values=vector_to_bytes(v)).to_dict()
                         for r, v in zip(texts, vectors, strict=True)], wait_indexed=False)
        cursor = entries[-1][0]
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(str(cursor))
        os.replace(tmp, self._cursor_path)
        return cursor

    def _read_cursor(self) -> int:
        try:
            return int(self._cursor_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0
