"""An entity extractor's reading of a memory, stored with the memory.

The graph and the insights read the entities and topic words of every memory of a user
(``extract`` over the memory's own statement), and a run that derives them reads the user's
whole history. The extractor is a model (spaCy), so reading a history again is the costly
part, and a run in a new process has no cache. ``l1_memories`` therefore stores the reading on
each memory it writes (``mentions``, with ``mentions_by`` naming the extractor and a checksum
of the text read), and the graph and the insights take a stored reading where it is current:
by the same extractor, of the same text. A memory written before readings were stored, or read
by another extractor, or whose text is not the one read, is read again as before, so what the
graph and the insights derive does not depend on where a reading came from.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from memorose_dagster.memory.consolidate import said_text

Mention = tuple[str, str]  # (name, kind), as ``memory.graph``
Extract = Callable[[list[str]], list[list[Mention]]]


def reading_key(extract: Extract, said: str) -> str | None:
    """What a stored reading must say to stand for ``extract`` over ``said``; None for an
    extractor without a name (its readings are never stored)."""
    name = getattr(extract, "name", None)
    if not name:
        return None
    return f"{name}/{zlib.crc32(said.encode('utf-8', 'surrogatepass')):08x}"


def encode(found: list[Mention]) -> list[str]:
    """``(name, kind)`` pairs as ``kind:name`` strings (a kind holds no colon)."""
    return [f"{kind}:{name}" for name, kind in found]


def decode(stored: list[str]) -> list[Mention]:
    out = []
    for item in stored:
        kind, _, name = item.partition(":")
        out.append((name, kind))
    return out


def read(memories: list[dict[str, Any]], extract: Extract) -> list[list[Mention]]:
    """``extract`` over each memory's own statement, in order: the stored reading where it is
    current, the extractor (in one call) for the rest."""
    said = [said_text(m["content"]) for m in memories]
    out: list[list[Mention] | None] = []
    todo = []
    for i, (memory, text) in enumerate(zip(memories, said, strict=True)):
        key = reading_key(extract, text)
        if key is not None and memory.get("mentions_by") == key:
            out.append(decode(memory.get("mentions") or []))
        else:
            out.append(None)
            todo.append(i)
    if todo:
        for i, found in zip(todo, extract([said[i] for i in todo]), strict=True):
            out[i] = found
    return out  # type: ignore[return-value]


def with_readings(memories: list[dict[str, Any]], extract: Extract) -> list[dict[str, Any]]:
    """``memories`` (in place, and returned) each with a current reading stored on it; those
    holding one already are not read again."""
    if not getattr(extract, "name", None):
        return memories
    todo = []
    for memory in memories:
        key = reading_key(extract, said_text(memory["content"]))
        if memory.get("mentions_by") != key:
            memory["mentions_by"] = key
            todo.append(memory)
    if todo:
        for memory, found in zip(todo, extract([said_text(m["content"]) for m in todo]),
                                 strict=True):
            memory["mentions"] = encode(found)
    return memories
