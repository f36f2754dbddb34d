"""One admin request from the command line, over a node's HTTP API: the first of the given
node URLs that answers (a node that cannot be reached, or answers 503, passes it on)."""

from __future__ import annotations

import os
from typing import Any

import httpx


def admin_headers() -> dict[str, str]:
    """The admin key (MEMOROSE_ADMIN_KEY) as a bearer token, when it is set."""
    key = os.environ.get("MEMOROSE_ADMIN_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def admin_request(method: str, path: str, body: Any, urls: str,
                  ) -> tuple[httpx.Response | None, list[str]]:
    """The answer of the first node that gives one (or None), and why the others did not."""
    failures = []
    for url in filter(None, (u.strip().rstrip("/") for u in urls.split(","))):
        try:
            response = httpx.request(method, url + path, json=body, headers=admin_headers(),
                                     timeout=60)
        except httpx.TransportError as exc:
            failures.append(f"{url}: {exc}")
            continue
        if response.status_code == 503:
            failures.append(f"{url}: {response.text}")
            continue
        return response, failures
    return None, failures
