"""Pack the best memories for a query into a token budget, as prompt-ready text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from memorose_dagster.memory import text
from memorose_dagster.memory.consolidate import said_text
from memorose_dagster.memory.rank import asks_about_past

CHARS_PER_TOKEN = 4  # the usual estimate for English text with BPE tokenizers


def tokens(text: str) -> int:
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def line_of(result: dict[str, Any]) -> str:
    when = result.get("time")
    if not when and result["provenance"]:
        stamp = result["provenance"][0]["timestamp"]
        when = datetime.fromtimestamp(stamp, UTC).strftime("%-d %B %Y")
    marker = " (superseded)" if result.get("superseded_by") else ""
    return f"- [{result['layer']}{', ' + when if when else ''}]{marker} {result['content']}"


def worth_saying(result: dict[str, Any], query: str) -> bool:
    """Not filler ("See you there.", "lol", and a reaction such as "A yard, how nice." whose
    own statement names one thing at most and no date, even with a reply travelling with it:
    the reply has its own line), and not a superseded value unless the question asks about the
    past ("where did she live before?")."""
    if result["layer"] != "L2" and not result.get("time") \
            and len(text.informative_words(said_text(result["content"]))) < 2:
        return False
    return not result.get("superseded_by") or asks_about_past(query)


def pack_context(results: list[dict[str, Any]], max_tokens: int,
                 header: str = "Relevant memories:", query: str = "",
                 min_relevance: float = 0.0) -> tuple[str, list[dict[str, Any]]]:
    """Lines for ``results`` (best first) that are worth saying for ``query`` and at least
    ``min_relevance`` relevant, while they fit ``max_tokens``; a line that does not fit is
    skipped, a shorter one after it may still fit. Returns the text and what it used."""
    used, lines, budget = [], [header], max_tokens - tokens(header)
    for result in results:
        if not worth_saying(result, query) or result.get("relevance", 1.0) < min_relevance:
            continue
        line = line_of(result)
        cost = tokens(line)
        if cost <= budget:
            lines.append(line)
            used.append(result)
            budget -= cost
    return ("\n".join(lines) if used else ""), used
