"""Dagster resources: the cluster client (the pipeline's only door to the data) and the model."""


import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from memorose_client import MemoroseClient
from memorose_dagster.memory.consolidate import DERIVATION as LOCAL_DERIVATION
from memorose_dagster.models.embedding import CachedEmbedder
from memorose_dagster.models.provider import (
    DEFAULT_PROVIDER,
    make_embedder,
    make_extractor,
    provider,
)
from memorose_dagster.pipeline import leasing
from memorose_dagster.pipeline.lanes import yield_cpu

COMMIT_CHUNK = 500  # records per log command: one Raft entry stays well under a few MB


class ClusterResource(dg.ConfigurableResource):
    """HTTP client of a Memorose cluster: reads the committed log, commits derived records."""

    urls: str = "http://127.0.0.1:8000"  # comma-separated; fails over between nodes
    admin_key: str = ""
    timeout: float = 60.0

    _client: MemoroseClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is not None:  # a run, not a sensor's tick
            yield_cpu(context.run.tags)
        self._client = MemoroseClient(self.urls, api_key=self.admin_key or None,
                                      timeout=self.timeout)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> MemoroseClient:
        if self._client is None:  # used outside a run (sensor context without setup)
            self._client = MemoroseClient(self.urls, api_key=self.admin_key or None,
                                          timeout=self.timeout)
        return self._client

    def read(self, after: int, until: int | None, kinds: list[str],
             page: int = 2000) -> Iterator[dict[str, Any]]:
        """Records of ``kinds`` committed in (after, until], oldest first."""
        cursor = after
        while until is None or cursor < until:
            body = self.client.read_log(cursor, limit=page, kinds=kinds, until=until)
            for entry in body["entries"]:
                yield from entry["records"]
            if body["next_cursor"] == cursor:
                return
            cursor = body["next_cursor"]

    def events_between(self, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
        """Every event whose id was made in [start_ms, end_ms), page by page."""
        after = None
        while True:
            body = self.client.events_between(start_ms, end_ms, after=after)
            yield from body["events"]
            if body["next"] is None:
                return
            after = body["next"]

    def has_new(self, after: int, kinds: list[str]) -> tuple[bool, int, int]:
        """Whether any record of ``kinds`` was committed after ``after``; the applied index; and
        the last index looked at (a read looks at a bounded stretch of the log: with nothing
        found, the caller goes on from there next time)."""
        body = self.client.read_log(after, limit=1, kinds=kinds)
        return bool(body["entries"]), body["applied_index"], body["next_cursor"]

    def event_counts(self, after: int, until: int,
                     enough: int | None = None) -> tuple[list[tuple[int, int]], int]:
        """(log index, events) of the entries with events in (after, until], oldest first,
        counted by the node from the log alone (no event is sent), and the last index counted:
        ``until``, or less when ``enough`` events were counted before it."""
        out, cursor, events = [], after, 0
        while cursor < until and (enough is None or events < enough):
            body = self.client.log_counts(cursor, until, kinds=["event"])
            out += [(index, count) for index, count in body["entries"]]
            events += sum(count for _, count in body["entries"])
            if body["next_cursor"] == cursor:
                break
            cursor = body["next_cursor"]
        return out, cursor

    def users(self) -> list[tuple[str, str]]:
        return self.client.users()

    def leased(self, context: dg.AssetExecutionContext,
               users: Iterable[tuple[str, str]]) -> AbstractContextManager[float]:
        """Hold ``users`` for this step (``pipeline/leasing.py``): no other run's step derives
        their memories meanwhile. Yields the seconds spent waiting for them."""
        return leasing.held(self.client, f"{context.run.run_id}:{context.op_def.name}", users)

    def users_after(self, after: int, entries: int,
                    until: int | None = None) -> set[tuple[str, str]]:
        """The (tenant, user_id) of the events in the next ``entries`` log entries with events
        after ``after`` (up to ``until``): who has more already committed."""
        body = self.client.read_log(after, limit=entries, kinds=["event"], until=until)
        return {(r["tenant"], r["user_id"]) for e in body["entries"] for r in e["records"]}

    def continuing(self, users: Iterable[tuple[str, str]], after: int,
                   until: int) -> set[tuple[str, str]]:
        """Of ``users``, those whose last event was committed in (after, until], by the node's
        per-user index (a store written before it answers for nobody)."""
        users = sorted(set(users))
        if not users:
            return set()
        last = self.client.last_events(users)
        return {u for u in users if last.get(u) is not None and after < last[u] <= until}

    def records(self, kind: str, tenant: str, user_id: str,
                streams: set[str] | None = None) -> list[dict[str, Any]]:
        return self.client.list_records(kind, user_id, tenant, streams)

    def l1_candidates(self, tenant: str, user_id: str, contents: list[str], ids: list[str],
                      event_ids: list[str]) -> list[dict[str, Any]]:
        """The user's L1 memories the new ones (``contents``, ``ids``) may merge into, supersede
        or retire, in the order ``records`` lists them."""
        return self.client.l1_candidates(user_id, tenant, contents, ids, event_ids)

    def derivations(self, kind: str = "l1") -> dict[str, dict[str, int]]:
        return self.client.derivations(kind)

    def commit(self, records: list[dict[str, Any]]) -> list[int]:
        return [self.client.commit(records[i:i + COMMIT_CHUNK])
                for i in range(0, len(records), COMMIT_CHUNK)]

    def commit_groups(self, groups: list[list[dict[str, Any]]]) -> list[int]:
        """Commit ``groups`` in chunks of about ``COMMIT_CHUNK`` records, never splitting a group:
        a record and its vector are stored together or not at all."""
        indexes, chunk = [], []
        for group in groups:
            if chunk and len(chunk) + len(group) > COMMIT_CHUNK:
                indexes.append(self.client.commit(chunk))
                chunk = []
            chunk += group
        if chunk:
            indexes.append(self.client.commit(chunk))
        return indexes


_MAKING = threading.Lock()  # a lock is no resource field: resources are copied and pickled


class ModelResource(dg.ConfigurableResource):
    """The model provider: ``auto`` (Gemini when GOOGLE_API_KEY is set, else the offline local
    MiniLM and consolidator), ``local`` or ``gemini``."""

    provider: str = DEFAULT_PROVIDER

    _embedder: CachedEmbedder | None = PrivateAttr(default=None)
    _extractor: Any = PrivateAttr(default=None)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "MEMOROSE_MODEL_PROVIDER": self.provider}

    def embedder(self) -> CachedEmbedder:
        """The provider's embedder, embedding each distinct text once per run."""
        with _MAKING:  # an asset's worker threads ask too: made once, its usage counted once
            if self._embedder is None:
                self._embedder = CachedEmbedder(make_embedder(self._env()))
        return self._embedder

    def extractor(self) -> Any:
        """The Gemini extractor, or None on the local path."""
        with _MAKING:
            if self._extractor is None and provider(self._env()) == "gemini":
                self._extractor = make_extractor(self._env())
        return self._extractor

    def derivation(self) -> str:
        """The name of the logic that makes L1 memories now: a memory named otherwise was made
        by an older consolidator (or another provider) and is re-derived."""
        extractor = self.extractor()
        return LOCAL_DERIVATION if extractor is None else f"gemini:{extractor.model}"

    def usage_metadata(self) -> dict[str, Any]:
        """Token and cost counts of this run's model calls (empty on the local path)."""
        usage: dict[str, Any] = {}
        inner = self._embedder.inner if self._embedder is not None else None
        for user in (inner, self._extractor):
            if user is not None and hasattr(user, "usage_metadata"):
                usage.update(user.usage_metadata())
        return usage
