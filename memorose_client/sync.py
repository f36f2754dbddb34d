"""The blocking client."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx

from memorose_client import models
from memorose_client._methods import ApiMethods, Call
from memorose_client.errors import MemoroseAPIError, MemoroseConnectionError, api_error

T = TypeVar("T")


def node_urls(base_url: str | list[str]) -> list[str]:
    urls = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    return [u.strip().rstrip("/") for u in urls if u.strip()]


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


_TLS: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of the process. httpx makes a new one per
    client (~20 ms of CPU: the CA bundle is parsed each time), and a Dagster sensor makes a
    client at every tick, each second."""
    global _TLS
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = httpx.create_ssl_context()
        return _TLS


def retry_next(response: httpx.Response, url: str, urls: list[str]) -> bool:
    """A 503 (no leader, a store being replaced) is worth asking the next node."""
    return response.status_code == 503 and url != urls[-1]


def give_up(urls: list[str], last: Exception | None) -> Exception:
    if isinstance(last, MemoroseAPIError):
        return last
    return MemoroseConnectionError(f"no Memorose node reachable at {urls}: {last}")


class MemoroseClient(ApiMethods):
    """Memorose over HTTP. ``base_url``: one node, a list, or a comma-separated string; a
    request that cannot reach a node, or that a node answers 503, goes to the next one."""

    def __init__(self, base_url: str | list[str] = "http://localhost:8000",
                 api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        self.urls = node_urls(base_url)
        self._http = httpx.Client(timeout=timeout, headers=auth_headers(api_key),
                                  transport=transport, verify=tls_context())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemoroseClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def memories(self, user_id: str, layer: str = "L1",
                 page_size: int = 100) -> Iterator[models.Memory]:
        """Every memory (L1) or insight (L2) of a user, oldest first, fetched page by page."""
        cursor = None
        while True:
            page = self.memories_page(user_id, layer, cursor, page_size)
            yield from page.memories
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def index_census(self) -> list[dict[str, Any]]:
        """Every reachable node's index census (RocksDB against Tantivy and LanceDB)."""
        out = []
        for url in self.urls:
            try:
                response = self._http.get(url + "/api/v1/admin/index/census")
            except httpx.TransportError:
                continue
            if response.status_code >= 400:
                raise api_error(response)
            out.append(response.json())
        return out

    def _run(self, call: Call[T]) -> T:
        return call.read(self._request(call.method, call.path, call.body))

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = self._http.request(method, url + path, json=body)
            except httpx.TransportError as exc:
                last = exc
                continue
            if retry_next(response, url, self.urls):
                last = api_error(response)
                continue
            if response.status_code >= 400:
                raise api_error(response)
            return response.json()
        raise give_up(self.urls, last)
