"""The Gemini provider (google-genai): embeddings, fact extraction, update decisions, insights.

Used when ``GOOGLE_API_KEY`` is set. One ``GeminiClient`` owns the SDK client, the retry policy
(exponential backoff with jitter on 429, 5xx and network errors) and the token/cost accounting;
``GeminiEmbedder`` and ``GeminiExtractor`` are thin task layers over it and may share one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import httpx
import numpy as np
from google import genai
from google.genai import errors, types

from memorose_dagster.errors import InvalidInput, MemoroseError
from memorose_dagster.models import prompts
from memorose_dagster.models.prompts import Fact, UpdateDecision

T = TypeVar("T")
SNIPPET_CHARS = 300
# google-genai moved from httpx to its fork httpx2 (3.6 requires it); catch network errors of both.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,) + (
    (importlib.import_module("httpx2").TransportError,) if importlib.util.find_spec("httpx2")
    else ())


class GeminiError(MemoroseError):
    """Gemini could not answer: retries exhausted, or a request it refuses (4xx)."""

    status = 502
    code = "llm_error"


class GeminiOutputError(MemoroseError):
    """Gemini answered, but not in the shape asked for (not JSON, wrong fields, unknown ids)."""

    status = 502
    code = "llm_bad_output"


ENV_PREFIX = "MEMOROSE_GEMINI_"


@dataclass(frozen=True)
class GeminiConfig:
    """Every knob of the Gemini provider.

    ``from_env`` reads ``GOOGLE_API_KEY`` and, for each other field, ``MEMOROSE_GEMINI_`` + the
    upper-cased field name (``MEMOROSE_GEMINI_EMBED_DIM``...); unset or empty keeps the default.
    """

    api_key: str = field(repr=False)  # never in logs or tracebacks
    base_url: str | None = None           # a proxy or a test server; None = Google's endpoint
    # v1beta: the version Google documents structured output (responseSchema) against.
    api_version: str = "v1beta"
    model: str = "gemini-2.5-flash"
    embed_model: str = "gemini-embedding-001"
    embed_dim: int = 768                  # sent as output_dimensionality
    embed_batch: int = 100                # texts per batchEmbedContents request
    extract_batch: int = 20               # events per extraction request
    max_retries: int = 4                  # attempts = max_retries + 1
    retry_base_delay: float = 1.0         # seconds; doubles per retry, plus up to 25% jitter
    retry_max_delay: float = 30.0         # seconds
    timeout: float = 60.0                 # seconds per HTTP request
    price_in: float = 0.30                # USD per million prompt tokens
    price_out: float = 2.50               # USD per million output tokens (thinking included)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.retry_base_delay < 0 or self.timeout <= 0:
            raise ValueError("max_retries and retry_base_delay must be >= 0, timeout > 0")
        if min(self.embed_dim, self.embed_batch, self.extract_batch) < 1:
            raise ValueError("embed_dim, embed_batch and extract_batch must be >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GeminiConfig:
        env = os.environ if env is None else env
        api_key = env.get("GOOGLE_API_KEY", "").strip()
        if not api_key:
            raise ValueError("GOOGLE_API_KEY is not set: the Gemini provider needs a key")
        values: dict[str, object] = {}
        for f in fields(cls)[1:]:
            name, raw = ENV_PREFIX + f.name.upper(), env.get(ENV_PREFIX + f.name.upper(), "")
            if not raw.strip():
                continue
            kind = {"int": int, "float": float}.get(str(f.type), str)
            try:
                values[f.name] = kind(raw.strip())
            except ValueError as exc:
                raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from exc
        return cls(api_key=api_key, **values)


@dataclass
class GeminiUsage:
    """Tokens, calls and estimated cost accumulated over a provider's lifetime (thread-safe)."""

    price_in: float
    price_out: float
    calls: int = 0
    embed_calls: int = 0
    embedded_texts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def add_generate(self, meta: types.GenerateContentResponseUsageMetadata | None) -> None:
        with self._lock:
            self.calls += 1
            if meta is not None:
                self.prompt_tokens += meta.prompt_token_count or 0
                self.output_tokens += meta.candidates_token_count or 0
                self.thoughts_tokens += meta.thoughts_token_count or 0
                self.total_tokens += meta.total_token_count or 0

    def add_embed(self, texts: int) -> None:
        with self._lock:
            self.embed_calls += 1
            self.embedded_texts += texts

    def add_retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def cost_usd(self) -> float:
        """Estimated generation cost; embeddings are not priced (the API reports no tokens)."""
        billed_out = self.output_tokens + self.thoughts_tokens
        return (self.prompt_tokens * self.price_in + billed_out * self.price_out) / 1e6

    def as_dict(self) -> dict[str, int | float]:
        with self._lock:
            return {"calls": self.calls, "embed_calls": self.embed_calls,
                    "embedded_texts": self.embedded_texts, "retries": self.retries,
                    "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens,
                    "thoughts_tokens": self.thoughts_tokens, "total_tokens": self.total_tokens,
                    "cost_usd": round(self.cost_usd, 6)}


def _retry_hint(exc: errors.APIError) -> float | None:
    """The server's RetryInfo delay in seconds ("retryDelay": "13s"), when a 429 carries one."""
    error = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


class GeminiClient:
    """One google-genai client with Memorose's retry policy and usage accounting.

    The SDK's own retries stay off (no ``retry_options``) so that this class alone decides, and
    counts, every retry.
    """

    def __init__(self, config: GeminiConfig, *, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.usage = GeminiUsage(config.price_in, config.price_out)
        self._sleep = sleep
        options = types.HttpOptions(base_url=config.base_url, api_version=config.api_version,
                                    timeout=int(config.timeout * 1000))
        self._client = genai.Client(api_key=config.api_key, vertexai=False, http_options=options)

    def generate_json(self, system: str, prompt: str, schema: dict) -> str:
        """The text of a JSON-mode reply to ``prompt`` (raises GeminiOutputError if empty)."""
        config = types.GenerateContentConfig(
            system_instruction=system, temperature=0.0, response_mime_type="application/json",
            response_schema=schema)
        model = self.config.model
        response = self.call(model, lambda: self._client.models.generate_content(
            model=model, contents=prompt, config=config))
        self.usage.add_generate(response.usage_metadata)
        text = response.text
        if not text:
            reason = response.candidates[0].finish_reason if response.candidates else None
            raise GeminiOutputError(f"{model} returned no text (finish reason {reason})",
                                    model=model, finish_reason=str(reason))
        return text

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One batchEmbedContents request: a vector per text, in order."""
        model = self.config.embed_model
        config = types.EmbedContentConfig(output_dimensionality=self.config.embed_dim)
        response = self.call(model, lambda: self._client.models.embed_content(
            model=model, contents=texts, config=config))
        self.usage.add_embed(len(texts))
        vectors = [e.values or [] for e in response.embeddings or []]
        if len(vectors) != len(texts) or any(len(v) != self.config.embed_dim for v in vectors):
            shapes = [len(v) for v in vectors][:5]
            raise GeminiOutputError(
                f"{model} returned {len(vectors)} embeddings of sizes {shapes}... for "
                f"{len(texts)} texts, expected dimension {self.config.embed_dim}", model=model)
        return vectors

    def usage_metadata(self) -> dict[str, int | float | str]:
        """Usage so far as flat ``gemini_*`` keys, ready for Dagster MaterializeResult metadata."""
        return {"gemini_model": self.config.model, "gemini_embed_model": self.config.embed_model,
                **{f"gemini_{k}": v for k, v in self.usage.as_dict().items()}}

    def call(self, model: str, request: Callable[[], T]) -> T:
        """``request()`` with exponential backoff on 429, 5xx and network errors."""
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            hint = None
            try:
                return request()
            except errors.APIError as exc:
                if not (exc.code == 429 or 500 <= (exc.code or 0) < 600):
                    raise GeminiError(f"{model} refused the request: {exc.code} {exc.status}: "
                                      f"{exc.message}", model=model, last_status=exc.code) from exc
                last, status, hint = exc, f"{exc.code} {exc.status}", _retry_hint(exc)
            except TRANSPORT_ERRORS as exc:
                last, status = exc, f"network error ({type(exc).__name__})"
            except (json.JSONDecodeError, errors.UnknownApiResponseError) as exc:
                raise GeminiOutputError(f"{model} sent an HTTP body that is not JSON: {exc}",
                                        model=model) from exc
            if attempt + 1 < attempts:
                self.usage.add_retry()
                self._sleep(self._backoff(attempt, hint))
        raise GeminiError(f"{model} failed after {attempts} attempts; last status {status}",
                          model=model, last_status=status, attempts=attempts) from last

    def _backoff(self, attempt: int, hint: float | None) -> float:
        delay = self.config.retry_base_delay * 2 ** attempt
        delay = max(delay, hint or 0.0)
        delay = min(delay, self.config.retry_max_delay)
        return delay * (1.0 + random.uniform(0.0, 0.25))  # jitter spreads synchronized retries


class GeminiEmbedder:
    """Gemini embeddings behind the ``Embedder`` interface: unit-length float32 rows."""

    def __init__(self, config: GeminiConfig | None = None, client: GeminiClient | None = None):
        self.client = client or GeminiClient(config or GeminiConfig.from_env())
        cfg = self.client.config
        self.name = f"{cfg.embed_model}-{cfg.embed_dim}"
        self.dim = cfg.embed_dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        size = self.client.config.embed_batch
        for start in range(0, len(texts), size):
            # Truncated dimensions (< 3072) come back unnormalised: normalise here.
            out[start:start + size] = self.client.embed(texts[start:start + size])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.clip(norms, 1e-12, None)).astype(np.float32)

    def usage_metadata(self) -> dict[str, int | float | str]:
        return self.client.usage_metadata()


class GeminiExtractor:
    """Gemini as the consolidator's brain: facts from events, update decisions, insights."""

    def __init__(self, config: GeminiConfig | None = None, client: GeminiClient | None = None):
        self.client = client or GeminiClient(config or GeminiConfig.from_env())
        self.model = self.client.config.model

    def extract_facts(self, events: list[dict]) -> list[Fact]:
        facts: list[Fact] = []
        for batch in prompts.extract_batches(events, self.client.config.extract_batch):
            text = self.client.generate_json(prompts.EXTRACT_SYSTEM,
                                             prompts.extract_prompt(batch),
                                             prompts.EXTRACT_SCHEMA)
            ids = [e["event_id"] for e in batch]
            facts.extend(self._parse(text, lambda t, ids=ids: prompts.parse_facts(t, ids)))
        return facts

    def decide_updates(self, new_fact: Fact, existing: list[dict]) -> list[UpdateDecision]:
        if not existing:  # nothing it could update or duplicate: no call needed
            return [UpdateDecision("ADD", None, "no similar memories")]
        text = self.client.generate_json(prompts.DECIDE_SYSTEM,
                                         prompts.decide_prompt(new_fact, existing),
                                         prompts.DECIDE_SCHEMA)
        ids = [m["id"] for m in existing]
        return self._parse(text, lambda t: prompts.parse_decisions(t, ids))

    def summarise(self, memories: list[dict]) -> str:
        if not memories:
            raise InvalidInput("summarise needs at least one memory")
        text = self.client.generate_json(prompts.SUMMARISE_SYSTEM,
                                         prompts.summarise_prompt(memories),
                                         prompts.SUMMARY_SCHEMA)
        return self._parse(text, prompts.parse_summary)

    def usage_metadata(self) -> dict[str, int | float | str]:
        return self.client.usage_metadata()

    def _parse(self, text: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(text)
        except ValueError as exc:  # includes json.JSONDecodeError
            snippet = text[:SNIPPET_CHARS]
            raise GeminiOutputError(f"{self.model} returned unusable output ({exc}): {snippet!r}",
                                    model=self.model, snippet=snippet) from exc
