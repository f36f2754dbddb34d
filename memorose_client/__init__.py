"""Python client for the Memorose HTTP API.

    from memorose_client import MemoroseClient
    client = MemoroseClient("http://localhost:8000")
    client.ingest("user_123", "session_1", "User loves hiking")
    client.retrieve(user_id="user_123", stream_id="session_1", query="outdoor activities", top_k=5)

Several node URLs may be given (a list, or one comma-separated string): a request that cannot
reach a node, or that a node answers 503, is retried on the next one. Every event gets its id
(a ULID) here, before the first attempt, so a batch resent after a lost response is stored once.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx

from memorose_dagster.ids import new_id

__all__ = ["MemoroseClient", "MemoroseAPIError", "MemoroseConnectionError"]


class MemoroseAPIError(Exception):
    """The API answered with an error: ``status``, ``code`` and ``message`` from its JSON body."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any]):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body


class MemoroseConnectionError(Exception):
    """No node could be reached."""


class MemoroseClient:
    def __init__(self, base_url: str | list[str] = "http://localhost:8000",
                 api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        urls = base_url.split(",") if isinstance(base_url, str) else list(base_url)
        self.urls = [u.strip().rstrip("/") for u in urls if u.strip()]
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemoroseClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


    def ingest(self, user_id: str, stream_id: str, content: str, *,
               metadata: dict[str, Any] | None = None, timestamp: float | datetime | None = None,
               content_type: str = "text", event_id: str | None = None) -> dict[str, Any]:
        """Store one event; returns ``{event_id, log_index}`` once it is committed."""
        return self._request("POST", "/api/v1/events", _event(
            user_id, stream_id, content, metadata, timestamp, content_type, event_id))

    def ingest_batch(self, events: list[dict[str, Any]]) -> list[str]:
        """Store events (dicts with the fields of ``ingest``) all or nothing; ids in order."""
        body = {"events": [_event(e["user_id"], e["stream_id"], e["content"], e.get("metadata"),
                                  e.get("timestamp"), e.get("content_type", "text"),
                                  e.get("event_id")) for e in events]}
        return self._request("POST", "/api/v1/events/batch", body)["event_ids"]

    def get_event(self, event_id: str, consistent: bool = False) -> dict[str, Any]:
        """The event as stored; ``consistent``: see every write acknowledged before the call."""
        suffix = "?consistent=1" if consistent else ""
        return self._request("GET", f"/api/v1/events/{event_id}{suffix}")

    def retrieve(self, user_id: str, query: str, top_k: int = 10, stream_id: str | None = None,
                 layers: list[str] | None = None, consistent: bool = False,
                 ) -> list[dict[str, Any]]:
        """Best memories for ``query``, each with ``id, layer, content, score, provenance``;
        ``consistent``: reflect every write acknowledged before the call (one Raft round)."""
        body: dict[str, Any] = {"user_id": user_id, "query": query, "top_k": top_k}
        if consistent:
            body["consistent"] = True
        if stream_id is not None:
            body["stream_id"] = stream_id
        if layers is not None:
            body["layers"] = layers
        return self._request("POST", "/api/v1/retrieve", body)["results"]

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def cluster_status(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/cluster/status")


    def read_log(self, after: int, limit: int = 500, kinds: list[str] | None = None,
                 until: int | None = None) -> dict[str, Any]:
        """Committed entries after log index ``after``: entries, next_cursor, applied_index."""
        params = f"?after={after}&limit={limit}"
        if kinds:
            params += "&kinds=" + ",".join(kinds)
        if until is not None:
            params += f"&until={until}"
        return self._request("GET", "/api/v1/admin/log" + params)

    def list_records(self, kind: str, user_id: str, tenant: str = "default",
                     streams: set[str] | None = None) -> list[dict]:
        """Every record of ``kind`` for one user; events of ``streams`` only, if given."""
        query = httpx.QueryParams([("kind", kind), ("user_id", user_id), ("tenant", tenant),
                                   *(("stream_id", s) for s in sorted(streams or ()))])
        return self._request("GET", f"/api/v1/admin/records?{query}")["records"]

    def users(self) -> list[tuple[str, str]]:
        """Every (tenant, user_id) with stored events."""
        body = self._request("GET", "/api/v1/admin/users")
        return [(u["tenant"], u["user_id"]) for u in body["users"]]

    def events_between(self, start_ms: int, end_ms: int, limit: int = 2000,
                       after: dict[str, str] | None = None) -> dict[str, Any]:
        """One page of the events whose id was made in [start_ms, end_ms): ``events`` and
        ``next`` (pass it back as ``after``; None at the end)."""
        query = httpx.QueryParams({"from_ms": start_ms, "to_ms": end_ms, "limit": limit,
                                   **(after or {})})
        return self._request("GET", f"/api/v1/admin/events?{query}")

    def derivations(self, kind: str = "l1") -> dict[str, dict[str, int]]:
        """Per derivation, how many memories of ``kind`` each ingest day holds."""
        return self._request("GET", f"/api/v1/admin/derivations?kind={kind}")["derivations"]

    def commit(self, records: list[dict[str, Any]]) -> int:
        """Commit derived records as one log command; returns its log index."""
        body = {"records": [{k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                             for k, v in r.items()} for r in records]}
        return self._request("POST", "/api/v1/admin/commit", body)["log_index"]


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
        return self._request("GET", f"/api/v1/admin/lake/records?{httpx.QueryParams(params)}")

    def lake_touched(self, after: int, until: int | None = None,
                     limit: int = 2000) -> dict[str, Any]:
        """The (tenant, day) partitions and ids written by the log entries after ``after``."""
        params = f"?after={after}&limit={limit}" + (f"&until={until}" if until is not None else "")
        return self._request("GET", "/api/v1/admin/lake/touched" + params)

    def index_census(self) -> list[dict[str, Any]]:
        """Every reachable node's index census (RocksDB against Tantivy and LanceDB)."""
        out = []
        for url in self.urls:
            try:
                response = self._http.get(url + "/api/v1/admin/index/census")
            except httpx.TransportError:
                continue
            if response.status_code >= 400:
                raise _api_error(response)
            out.append(response.json())
        return out

    def audit(self) -> dict[str, Any]:
        """The audit report over the node's lake (``GET /api/v1/admin/audit``)."""
        return self._request("GET", "/api/v1/admin/audit")


    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = self._http.request(method, url + path, json=body)
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code == 503 and url != self.urls[-1]:
                last = _api_error(response)
                continue
            if response.status_code >= 400:
                raise _api_error(response)
            return response.json()
        if isinstance(last, MemoroseAPIError):
            raise last
        raise MemoroseConnectionError(f"no Memorose node reachable at {self.urls}: {last}")


def _event(user_id: str, stream_id: str, content: str, metadata: dict[str, Any] | None,
           timestamp: float | datetime | None, content_type: str,
           event_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id or new_id(), "user_id": user_id,
                             "stream_id": stream_id, "content": content,
                             "content_type": content_type}
    if metadata is not None:
        event["metadata"] = metadata
    if timestamp is not None:
        event["timestamp"] = timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp
    return event


def _api_error(response: httpx.Response) -> MemoroseAPIError:
    try:
        body = response.json()
        error = body["error"]
        return MemoroseAPIError(response.status_code, error["code"], error["message"], body)
    except (ValueError, KeyError, TypeError):
        return MemoroseAPIError(response.status_code, "http_error", response.text[:500], {})
