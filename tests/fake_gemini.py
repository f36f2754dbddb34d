"""A fake Gemini API on 127.0.0.1 for driving the real google-genai client in tests.

A real HTTP server in a background thread. It records every request and answers from a script:
queued replies first (``fail``, ``reply_text``, ``reply_json``, ``enqueue``), then the default,
which embeds texts deterministically and refuses unscripted generate calls with a 400. A status
set with ``fail_forever`` overrides everything.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

STATUS_NAMES = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE"}


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Reply:
    """One scripted answer: an HTTP status and a JSON body (or raw text, sent as is)."""

    status: int
    body: dict[str, Any] | str = field(default_factory=dict)


def error_body(status: int, message: str = "scripted failure") -> dict[str, Any]:
    """A Google-style error envelope."""
    return {"error": {"code": status, "message": message,
                      "status": STATUS_NAMES.get(status, "UNKNOWN")}}


def generate_body(text: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A generateContent reply whose one candidate says ``text``."""
    body: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                            "finishReason": "STOP", "index": 0}],
                            "modelVersion": "fake"}
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic, deliberately not unit-length vector for ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return (np.random.default_rng(seed).normal(size=dim) * 3.0).round(6).tolist()


class FakeGemini:
    """A scriptable Gemini HTTP server; use as a context manager or call ``close()``."""

    def __init__(self, default_dim: int = 768):
        self.default_dim = default_dim
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._forever: int | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)  # short poll: fast shutdown
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeGemini:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(self, status: int, body: dict[str, Any] | str) -> None:
        with self._lock:
            self._queue.append(Reply(status, body))

    def fail(self, status: int, times: int = 1, body: dict[str, Any] | None = None) -> None:
        for _ in range(times):
            self.enqueue(status, body or error_body(status))

    def fail_forever(self, status: int) -> None:
        self._forever = status

    def reply_text(self, text: str, usage: dict[str, int] | None = None) -> None:
        self.enqueue(200, generate_body(text, usage))

    def reply_json(self, payload: Any, usage: dict[str, int] | None = None) -> None:
        self.reply_text(json.dumps(payload), usage)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def answer(self, recorded: Recorded) -> Reply:
        """What to send back for ``recorded``: forced failure, queued reply, or the default."""
        with self._lock:
            self.requests.append(recorded)
            if self._forever is not None:
                return Reply(self._forever, error_body(self._forever))
            if self._queue:
                return self._queue.popleft()
        return self._default(recorded)

    def _default(self, recorded: Recorded) -> Reply:
        if recorded.path.endswith(":batchEmbedContents"):
            vectors = []
            for item in recorded.body.get("requests", []):
                text = " ".join(p.get("text", "") for p in item["content"]["parts"])
                dim = item.get("outputDimensionality", self.default_dim)
                vectors.append({"values": fake_vector(text, dim)})
            return Reply(200, {"embeddings": vectors})
        return Reply(400, error_body(400, f"no scripted reply for {recorded.path}"))


def _handler_for(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stall

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.answer(Recorded("POST", self.path, headers, body))
            raw_reply = isinstance(reply.body, str)
            data = (reply.body if raw_reply else json.dumps(reply.body)).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/html" if raw_reply else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    return Handler
