"""Every API call once, as data (method, path, body, how to read the answer): the sync and
the async client inherit these methods and differ only in how ``_run`` sends a call."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from memorose_client import models
from memorose_dagster.ids import new_id

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    body: Any = None
    read: Callable[[Any], T] = lambda body: body


def _seg(value: str) -> str:
    return quote(value, safe="")


def _log_query(after: int, limit: int, kinds: list[str] | None, until: int | None) -> str:
    """The query string of the log reads: a cursor, a page size, kinds and an end, if given."""
    params = f"?after={after}&limit={limit}"
    if kinds:
        params += "&kinds=" + ",".join(kinds)
    if until is not None:
        params += f"&until={until}"
    return params


def event_body(user_id: str, stream_id: str, content: str,
               metadata: dict[str, Any] | None = None,
               timestamp: float | datetime | None = None, content_type: str = "text",
               event_id: str | None = None) -> dict[str, Any]:
    """An event as the API takes it, named (a ULID) here so that a resend is stored once."""
    event: dict[str, Any] = {"event_id": event_id or new_id(), "user_id": user_id,
                             "stream_id": stream_id, "content": content,
                             "content_type": content_type}
    if metadata is not None:
        event["metadata"] = metadata
    if timestamp is not None:
        event["timestamp"] = timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp
    return event


def _query_body(user_id: str, query: str, stream_id: str | None,
                layers: list[str] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "query": query, **extra}
    if stream_id is not None:
        body["stream_id"] = stream_id
    if layers is not None:
        body["layers"] = layers
    return body


class ApiMethods:
    """The Memorose API, one method per endpoint (``_run`` sends the call)."""

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any endpoint: the JSON answer, with the client's failover and errors."""
        return self._run(Call(method, path, body))

    # Events
    def ingest(self, user_id: str, stream_id: str, content: str, *,
               metadata: dict[str, Any] | None = None, timestamp: float | datetime | None = None,
               content_type: str = "text", event_id: str | None = None) -> dict[str, Any]:
        """Store one event; returns ``{event_id, log_index}`` once it is committed."""
        return self._run(Call("POST", "/api/v1/events", event_body(
            user_id, stream_id, content, metadata, timestamp, content_type, event_id)))

    def ingest_batch(self, events: list[dict[str, Any]]) -> list[str]:
        """Store events (dicts with the fields of ``ingest``) all or nothing; ids in order."""
        body = {"events": [event_body(
            e["user_id"], e["stream_id"], e["content"], e.get("metadata"), e.get("timestamp"),
            e.get("content_type", "text"), e.get("event_id")) for e in events]}
        return self._run(Call("POST", "/api/v1/events/batch", body,
                              lambda r: r["event_ids"]))

    def get_event(self, event_id: str, consistent: bool = False) -> models.Event:
        """The event as stored; ``consistent``: see every write acknowledged before the call."""
        suffix = "?consistent=1" if consistent else ""
        return self._run(Call("GET", f"/api/v1/events/{_seg(event_id)}{suffix}",
                              read=models.Event.of))

    def delete_event(self, event_id: str) -> models.Forgotten:
        """Forget a raw event and what was derived only from it."""
        return self._run(Call("DELETE", f"/api/v1/events/{_seg(event_id)}",
                              read=models.Forgotten.of))

    # Reading memory
    def retrieve(self, user_id: str, query: str, top_k: int = 10, stream_id: str | None = None,
                 layers: list[str] | None = None, consistent: bool = False,
                 ) -> list[models.Result]:
        """Best memories for ``query``, each with ``id, layer, content, score, provenance``;
        ``consistent``: reflect every write acknowledged before the call (one Raft round)."""
        extra = {"consistent": True} if consistent else {}
        body = _query_body(user_id, query, stream_id, layers, top_k=top_k, **extra)
        return self._run(Call("POST", "/api/v1/retrieve", body,
                              lambda r: [models.Result.of(x) for x in r["results"]]))

    def context(self, user_id: str, query: str, max_tokens: int = 1000,
                stream_id: str | None = None, layers: list[str] | None = None,
                ) -> models.Context:
        """The best memories for ``query`` as prompt-ready text within ``max_tokens``."""
        body = _query_body(user_id, query, stream_id, layers, max_tokens=max_tokens)
        return self._run(Call("POST", "/api/v1/context", body, models.Context.of))

    def graph(self, user_id: str, entity: str | None = None, hops: int = 1) -> models.Graph:
        """A user's knowledge graph, or the part within ``hops`` of ``entity``."""
        params = {"hops": hops, **({"entity": entity} if entity is not None else {})}
        return self._run(Call(
            "GET", f"/api/v1/users/{_seg(user_id)}/graph?{httpx.QueryParams(params)}",
            read=models.Graph.of))

    def memories_page(self, user_id: str, layer: str = "L1", cursor: str | None = None,
                      limit: int = 100) -> models.MemoryPage:
        """One page of a user's memories (L1) or insights (L2), oldest first."""
        params = {"layer": layer, "limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._run(Call(
            "GET", f"/api/v1/users/{_seg(user_id)}/memories?{httpx.QueryParams(params)}",
            read=models.MemoryPage.of))

    def get_memory(self, memory_id: str) -> models.Memory:
        """One L1 memory or L2 insight, with provenance."""
        return self._run(Call("GET", f"/api/v1/memories/{_seg(memory_id)}",
                              read=models.Memory.of))

    # Forgetting
    def delete_memory(self, memory_id: str) -> models.Forgotten:
        """Forget an L1 memory or L2 insight and everything derived from it."""
        return self._run(Call("DELETE", f"/api/v1/memories/{_seg(memory_id)}",
                              read=models.Forgotten.of))

    def forget(self, user_id: str, query: str, top_k: int = 10,
               layers: list[str] | None = None) -> models.ForgetPreview:
        """Step one of forget by query: the candidates and a signed token. Removes nothing."""
        body = _query_body(user_id, query, None, layers, top_k=top_k)
        return self._run(Call("POST", "/api/v1/forget", body, models.ForgetPreview.of))

    forget_preview = forget

    def forget_confirm(self, preview: models.ForgetPreview | str,
                       ids: list[str] | None = None) -> models.Forgotten:
        """Step two: forget ``ids`` (default: every candidate of ``preview``)."""
        if isinstance(preview, str):
            token, chosen = preview, ids
        else:
            token, chosen = preview.token, preview.ids if ids is None else ids
        if not chosen:
            raise ValueError("forget_confirm needs the ids to forget")
        return self._run(Call("POST", "/api/v1/forget/confirm",
                              {"token": token, "ids": chosen}, models.Forgotten.of))

    # The node and the cluster
    def health(self) -> dict[str, Any]:
        return self._run(Call("GET", "/health"))

    def status(self) -> models.Status:
        """Node id, role, term, commit / applied / indexed index (admin key)."""
        return self._run(Call("GET", "/api/v1/cluster/status", read=models.Status.of))

    def cluster_status(self) -> dict[str, Any]:
        return self._run(Call("GET", "/api/v1/cluster/status"))

    # Keys (admin key)
    def create_key(self, tenant: str, read_only: bool = False, name: str = "") -> models.ApiKey:
        """Make a tenant key; its ``secret`` is in this answer only."""
        body = {"tenant": tenant, "read_only": read_only, "name": name}
        return self._run(Call("POST", "/api/v1/admin/keys", body, models.ApiKey.of))

    def list_keys(self) -> list[models.ApiKey]:
        return self._run(Call("GET", "/api/v1/admin/keys",
                              read=lambda r: [models.ApiKey.of(k) for k in r["keys"]]))

    def revoke_key(self, key_id: str) -> models.ApiKey:
        return self._run(Call("DELETE", f"/api/v1/admin/keys/{_seg(key_id)}",
                              read=models.ApiKey.of))

    # The pipeline (admin key)
    def read_log(self, after: int, limit: int = 500, kinds: list[str] | None = None,
                 until: int | None = None) -> dict[str, Any]:
        """Committed entries after log index ``after``: entries, next_cursor, applied_index."""
        return self._run(Call("GET", "/api/v1/admin/log" + _log_query(after, limit, kinds,
                                                                      until)))

    def log_counts(self, after: int, until: int | None = None, limit: int = 10_000,
                   kinds: list[str] | None = None) -> dict[str, Any]:
        """Per committed entry after log index ``after``, how many records of ``kinds`` it
        holds: entries (``[log_index, records]``), next_cursor, applied_index."""
        return self._run(Call("GET", "/api/v1/admin/log/counts" + _log_query(after, limit, kinds,
                                                                             until)))

    def list_records(self, kind: str, user_id: str, tenant: str = "default",
                     streams: set[str] | None = None) -> list[dict]:
        """Every record of ``kind`` for one user; events of ``streams`` only, if given."""
        query = httpx.QueryParams([("kind", kind), ("user_id", user_id), ("tenant", tenant),
                                   *(("stream_id", s) for s in sorted(streams or ()))])
        return self._run(Call("GET", f"/api/v1/admin/records?{query}",
                              read=lambda r: r["records"]))

    def l1_candidates(self, user_id: str, tenant: str, contents: list[str], ids: list[str],
                      event_ids: list[str]) -> list[dict]:
        """The user's L1 memories a consolidator run over new events can touch: those its new
        memories (``contents``, ``ids``) may merge into, supersede or retire."""
        body = {"user_id": user_id, "tenant": tenant, "contents": contents, "ids": ids,
                "event_ids": event_ids}
        return self._run(Call("POST", "/api/v1/admin/candidates", body,
                              read=lambda r: r["records"]))

    def last_events(self, users: list[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        """The log index of each user's last event (None: no event, or stored before the node
        kept it)."""
        body = {"users": [{"tenant": t, "user_id": u} for t, u in users]}
        return self._run(Call("POST", "/api/v1/admin/users/last-events", body, read=lambda r: {
            (u["tenant"], u["user_id"]): u["log_index"] for u in r["users"]}))

    def acquire_lease(self, owner: str, users: list[tuple[str, str]],
                      ttl_seconds: float = 120.0) -> dict:
        """Lease every (tenant, user_id) to ``owner`` (renewing its own leases), or none: a 409
        ``lease_held`` names the users another owner holds."""
        body = {"owner": owner, "ttl_seconds": ttl_seconds,
                "users": [{"tenant": t, "user_id": u} for t, u in users]}
        return self._run(Call("POST", "/api/v1/admin/leases", body))

    def release_lease(self, owner: str) -> int:
        """Drop every lease of ``owner``; how many users it held."""
        return self._run(Call("DELETE", f"/api/v1/admin/leases/{_seg(owner)}",
                              read=lambda r: r["released"]))

    def leases(self) -> dict[str, list[tuple[str, str]]]:
        """The leases in force: owner -> the (tenant, user_id) it holds."""
        return self._run(Call("GET", "/api/v1/admin/leases", read=lambda r: {
            lease["owner"]: [(u["tenant"], u["user_id"]) for u in lease["users"]]
            for lease in r["leases"]}))

    def users(self) -> list[tuple[str, str]]:
        """Every (tenant, user_id) with stored events."""
        return self._run(Call("GET", "/api/v1/admin/users", read=lambda r: [
            (u["tenant"], u["user_id"]) for u in r["users"]]))

    def events_between(self, start_ms: int, end_ms: int, limit: int = 2000,
                       after: dict[str, str] | None = None) -> dict[str, Any]:
        """One page of the events whose id was made in [start_ms, end_ms): ``events`` and
        ``next`` (pass it back as ``after``; None at the end)."""
        query = httpx.QueryParams({"from_ms": start_ms, "to_ms": end_ms, "limit": limit,
                                   **(after or {})})
        return self._run(Call("GET", f"/api/v1/admin/events?{query}"))

    def derivations(self, kind: str = "l1") -> dict[str, dict[str, int]]:
        """Per derivation, how many memories of ``kind`` each ingest day holds."""
        return self._run(Call("GET", f"/api/v1/admin/derivations?kind={kind}",
                              read=lambda r: r["derivations"]))

    def commit(self, records: list[dict[str, Any]]) -> int:
        """Commit derived records as one log command; returns its log index."""
        body = {"records": [{k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                             for k, v in r.items()} for r in records]}
        return self._run(Call("POST", "/api/v1/admin/commit", body, lambda r: r["log_index"]))

    def whoami(self) -> dict[str, Any]:
        """What this client's key reaches: ``{role, tenant, read_only, open, ...}``."""
        return self._run(Call("GET", "/dashboard/api/whoami"))

    def lake_records(self, kind: str, days: list[str] | None = None, tenant: str | None = None,
                     after: str | None = None, limit: int = 2000,
                     values: bool = False) -> dict[str, Any]:
        """One page of the records of ``kind``, each with its ``day``: ``records`` and ``next``
        (pass it back as ``after``; None at the end). ``values``: vectors keep their values."""
        params: dict[str, Any] = {"kind": kind, "limit": limit}
        if days:
            params["days"] = ",".join(days)
        if tenant is not None:
            params["tenant"] = tenant
        if after:
            params["after"] = after
        if values:
            params["values"] = 1
        return self._run(Call("GET", f"/api/v1/admin/lake/records?{httpx.QueryParams(params)}"))

    def lake_touched(self, after: int, until: int | None = None,
                     limit: int = 2000) -> dict[str, Any]:
        """The (tenant, day) partitions and [tenant, id]s written by the log entries after
        ``after``."""
        params = f"?after={after}&limit={limit}" + (f"&until={until}" if until is not None else "")
        return self._run(Call("GET", "/api/v1/admin/lake/touched" + params))

    def lake_rows(self, tenant: str, ids: list[str]) -> list[dict[str, Any]]:
        """The current rows of every lake table whose id is one of ``ids`` in ``tenant``."""
        return self._run(Call("POST", "/api/v1/admin/lake/rows", {"tenant": tenant, "ids": ids},
                              lambda r: r["records"]))

    def audit(self) -> dict[str, Any]:
        """The audit report over the node's lake (``GET /api/v1/admin/audit``)."""
        return self._run(Call("GET", "/api/v1/admin/audit"))
