"""Every record checked against its type: before a node proposes it, and again in the state
machine before it is applied.

The field types come from the record dataclasses' annotations (so a new record kind is checked
without a change here); the rules annotations cannot say are added by field name: ids become
RocksDB key parts, layers and kinds name known tables, vectors hold whole float32s, numbers are
finite. The checks are pure functions of the record, so every replica decides alike.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from memorose_dagster.records import LAYER_OF_KIND, RECORD_TYPES, unpack, vector_from_bytes

ID_FIELDS = frozenset({"tenant", "user_id", "stream_id", "event_id", "id", "record_id",
                       "target_id"})
ID_LIST_FIELDS = frozenset({"source_event_ids", "member_ids", "memory_ids"})
KIND_FIELDS = frozenset({"target_kind"})
INT_RANGE = (-(2**63), 2**64 - 1)  # what msgpack carries
MAX_DEPTH = 32  # metadata nesting


class InvalidRecord(ValueError):
    """A record that does not fit its type; ``field`` names the first offending field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


Check = Callable[[Any], str]  # "" when the value fits, else what is wrong


def _plain_json(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return INT_RANGE[0] <= value <= INT_RANGE[1]
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v, depth + 1) for k, v in value.items())
    return False


def _checker(hint: Any) -> Check:
    """A check for one annotation; an annotation with no rule here fails at import."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return lambda v: "" if isinstance(v, str) else "must be a string"
    if hint is bool:
        return lambda v: "" if isinstance(v, bool) else "must be a boolean"
    if hint is int:
        return lambda v: "" if isinstance(v, int) and not isinstance(v, bool) \
            and INT_RANGE[0] <= v <= INT_RANGE[1] else "must be an integer"
    if hint is float:
        return lambda v: ("must be a number" if not isinstance(v, int | float)
                          or isinstance(v, bool) else "" if math.isfinite(v)
                          else "must be a finite number")
    if hint is bytes:
        return lambda v: "" if isinstance(v, bytes) else "must be bytes"
    if origin is list and args and args[0] is str:
        return lambda v: "" if isinstance(v, list) and all(isinstance(x, str) for x in v) \
            else "must be a list of strings"
    if origin is dict and args and args[0] is str:
        return lambda v: "" if isinstance(v, dict) and _plain_json(v) \
            else "must be an object of plain JSON values"
    if origin in (typing.Union, types.UnionType):
        options = [_checker(a) for a in args if a is not type(None)]
        nullable = type(None) in args

        def either(v: Any) -> str:
            if v is None and nullable:
                return ""
            problems = [check(v) for check in options]
            return "" if "" in problems else problems[0] + (" or null" if nullable else "")
        return either
    raise TypeError(f"no validation rule for the record annotation {hint!r}")


def _plain_id(value: str) -> str:
    if not value.strip():
        return "must be a non-empty id"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must be plain text (no control characters or key separator)"
    return ""


def _vector_bytes(value: bytes) -> str:
    if not value or len(value) % 4:
        return "must hold a whole, non-zero number of float32 values (4 bytes each)"
    if not all(math.isfinite(x) for x in vector_from_bytes(value).tolist()):
        return "must hold finite float32 values"
    return ""


def _extra(kind: str, name: str, value: Any) -> str:
    """The rules beyond the annotation, by field name."""
    if name in ID_FIELDS and isinstance(value, str):
        return _plain_id(value)
    if name in ID_LIST_FIELDS and isinstance(value, list):
        return next((f"holds a bad id: {p}" for p in map(_plain_id, value) if p), "")
    if name in KIND_FIELDS and value not in RECORD_TYPES:
        return f"must be one of {sorted(RECORD_TYPES)}"
    if kind == "vector" and name == "layer" and value not in LAYER_OF_KIND.values():
        return f"must be one of {sorted(LAYER_OF_KIND.values())}"
    if kind == "vector" and name == "values":
        return _vector_bytes(value)
    return ""


def _same(value: Any) -> Any:
    return value


def _schema(cls: type) -> list[tuple[str, Check, Any]]:
    """(field, check, default factory or MISSING) in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        default: Any = MISSING
        if f.default is not MISSING:
            default = functools.partial(_same, f.default)
        elif f.default_factory is not MISSING:
            default = f.default_factory
        out.append((f.name, _checker(hints[f.name]), default))
    return out


SCHEMAS = {kind: _schema(cls) for kind, cls in RECORD_TYPES.items()}


def validate_record(data: Any) -> dict[str, Any]:
    """The record as it will be stored (its fields only, defaults filled in), or InvalidRecord
    naming the first field that does not fit."""
    if not isinstance(data, dict):
        raise InvalidRecord("", "a record must be an object")
    kind = data.get("kind")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise InvalidRecord("kind", f"must be one of {sorted(SCHEMAS)}")
    out: dict[str, Any] = {}
    for name, check, default in schema:
        if name not in data:
            if default is MISSING:
                raise InvalidRecord(name, "is required")
            out[name] = default()
            continue
        value = data[name]
        problem = check(value) or _extra(kind, name, value)
        if problem:
            raise InvalidRecord(name, problem)
        out[name] = value
    out["kind"] = kind
    return out


def check_command(command: Any) -> tuple[list[dict[str, Any]], str]:
    """A decoded command's records as they will be stored, and "" ; or [] and why no replica
    can apply it."""
    if not isinstance(command, list):
        return [], "a command must be a list of records"
    records = []
    for i, data in enumerate(command):
        try:
            records.append(validate_record(data))
        except InvalidRecord as exc:
            return [], f"records.{i}.{exc.field}: {exc.problem}" if exc.field \
                else f"records.{i}: {exc.problem}"
    return records, ""


def decode_command(payload: bytes) -> tuple[list[dict[str, Any]], str]:
    """``check_command`` of a committed payload, which may not even be msgpack."""
    try:
        command = unpack(payload)
    except Exception:  # msgpack raises a zoo (FormatError, ExtraData, StackError, ValueError,
        # TypeError for unhashable keys...): any of them means the same to every replica
        return [], "undecodable payload"
    return check_command(command)
