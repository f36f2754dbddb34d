"""LLM providers: the offline local consolidator (default) and Gemini (when GOOGLE_API_KEY is set).

The Gemini names are loaded on first use, so the offline path never imports google-genai.
"""

from __future__ import annotations

import importlib
from typing import Any

_GEMINI = ("GeminiClient", "GeminiConfig", "GeminiEmbedder", "GeminiError", "GeminiExtractor",
           "GeminiOutputError", "GeminiUsage")
_PROMPTS = ("Fact", "UpdateDecision")

__all__ = [*_GEMINI, *_PROMPTS]


def __getattr__(name: str) -> Any:
    if name in _GEMINI:
        return getattr(importlib.import_module("memorose_dagster.models.gemini"), name)
    if name in _PROMPTS:
        return getattr(importlib.import_module("memorose_dagster.models.prompts"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
