"""The asyncio client: the same methods as ``MemoroseClient``, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from memorose_client import models
from memorose_client._methods import ApiMethods, Call
from memorose_client.errors import api_error
from memorose_client.sync import auth_headers, give_up, node_urls, retry_next, tls_context

T = TypeVar("T")


class AsyncMemoroseClient(ApiMethods):
    """Memorose over HTTP with ``httpx.AsyncClient``: every method of ``MemoroseClient``
    returns an awaitable here (``memories`` is an async iterator); the same failover over
    several node URLs and the same retry of a 503 on the next node."""

    def __init__(self, base_url: str | list[str] = "http://localhost:8000",
                 api_key: str | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.urls = node_urls(base_url)
        self._http = httpx.AsyncClient(timeout=timeout, headers=auth_headers(api_key),
                                       transport=transport, verify=tls_context())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMemoroseClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def memories(self, user_id: str, layer: str = "L1",
                       page_size: int = 100) -> AsyncIterator[models.Memory]:
        """Every memory (L1) or insight (L2) of a user, oldest first, fetched page by page."""
        cursor = None
        while True:
            page = await self.memories_page(user_id, layer, cursor, page_size)
            for memory in page.memories:
                yield memory
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _run(self, call: Call[T]) -> T:  # type: ignore[override]
        return call.read(await self._request(call.method, call.path, call.body))

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = await self._http.request(method, url + path, json=body)
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
