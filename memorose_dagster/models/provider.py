"""Which model does the work: the offline local path by default, Gemini when a key is given.

``MEMOROSE_MODEL_PROVIDER`` = ``auto`` (default: Gemini if ``GOOGLE_API_KEY`` is set, else
local), ``local`` or ``gemini`` (which then requires the key). The node and the pipeline must
agree on the embedding model: vectors carry the model's name and a node indexes only its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from memorose_dagster.errors import InvalidInput
from memorose_dagster.models.embedding import Embedder, LocalMiniLM

_LOCAL: LocalMiniLM | None = None
DEFAULT_PROVIDER = "auto"  # the node and the pipeline share this default


def provider(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    choice = env.get("MEMOROSE_MODEL_PROVIDER", DEFAULT_PROVIDER) or DEFAULT_PROVIDER
    if choice not in ("auto", "local", "gemini"):
        raise InvalidInput(f"MEMOROSE_MODEL_PROVIDER must be auto, local or gemini: {choice!r}")
    if choice == "auto":
        return "gemini" if env.get("GOOGLE_API_KEY") else "local"
    if choice == "gemini" and not env.get("GOOGLE_API_KEY"):
        raise InvalidInput("MEMOROSE_MODEL_PROVIDER=gemini needs GOOGLE_API_KEY")
    return choice


def local_embedder() -> LocalMiniLM:
    global _LOCAL  # one model per process: it is read-only and thread-safe
    if _LOCAL is None:
        _LOCAL = LocalMiniLM()
    return _LOCAL


def make_embedder(env: Mapping[str, str] | None = None) -> Embedder:
    if provider(env) == "local":
        return local_embedder()
    from memorose_dagster.models.gemini import GeminiConfig, GeminiEmbedder

    return GeminiEmbedder(GeminiConfig.from_env(env))


def make_extractor(env: Mapping[str, str] | None = None) -> Any:
    """A ``GeminiExtractor`` when Gemini is the provider, else None (the local consolidator)."""
    if provider(env) == "local":
        return None
    from memorose_dagster.models.gemini import GeminiConfig, GeminiExtractor

    return GeminiExtractor(GeminiConfig.from_env(env))
