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
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

import numpy as np

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


def _flat_plain(value: dict[Any, Any]) -> bool:
    """An object of plain scalars under string keys: most metadata, in a fifth of the walk."""
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str:
            return False
        if kind is str or kind is bool or item is None:
            continue
        if kind is int and INT_RANGE[0] <= item <= INT_RANGE[1]:
            continue
        if kind is not float or item - item != 0.0:  # a container, inf or nan: not flat
            return False
    return True


def _plain_json(value: Any) -> bool:
    """None, booleans, strings, finite numbers, and lists and string-keyed objects of them."""
    if type(value) is dict and _flat_plain(value):
        return True
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if item is None or kind is str or kind is bool:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is int:
            if not INT_RANGE[0] <= item <= INT_RANGE[1]:
                return False
        elif depth >= MAX_DEPTH:
            return False
        elif kind is list:
            stack.extend([(x, depth + 1) for x in item])
        elif kind is dict:
            if not all(type(k) is str for k in item):
                return False
            stack.extend([(x, depth + 1) for x in item.values()])
        else:
            return False
    return True


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
        return lambda v: ("must be a number" if not isinstance(v, (int, float))
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


Fits = dict[type, Callable[[Any], bool] | None]  # exact type -> a test left (None: none)


def _fits(hint: Any) -> Fits:
    """The fast path of ``_checker(hint)``: for a value of one of these exact types, the test
    given (or none) passing means the check passes. Any other value, or a failed test, goes to
    the check itself, which says what is wrong."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (str, bool, bytes):
        return {hint: None}
    if hint is int:
        return {int: lambda v: INT_RANGE[0] <= v <= INT_RANGE[1]}
    if hint is float:
        return {float: math.isfinite}
    if origin is list and args and args[0] is str:
        return {list: lambda v: all(type(x) is str for x in v)}
    if origin is dict and args and args[0] is str:
        return {dict: _plain_json}
    if origin in (typing.Union, types.UnionType):
        merged: Fits = {}
        for option in args:
            merged.update({type(None): None} if option is type(None) else _fits(option))
        return merged
    return {}


def _with_extra(fits: Fits, extra: Check | None) -> Fits:
    """``fits`` for a field with a rule beyond its type (which None, where allowed, skips)."""
    if extra is None:
        return fits
    passes = _FAST_EXTRA.get(extra) or (lambda v: not extra(v))
    return {kind: None if kind is type(None) else passes if test is None else
            (lambda v, test=test: test(v) and passes(v))
            for kind, test in fits.items()}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain_id(value: Any) -> str:
    if not value.strip():
        return "must be a non-empty id"
    if _CONTROL.search(value):
        return "must be plain text (no control characters or key separator)"
    return ""


def _plain_ids(value: Any) -> str:
    return next((f"holds a bad id: {p}" for p in map(_plain_id, value) if p), "")


def _printable_id(value: str) -> bool:
    """A fast sufficient test for ``_plain_id``: no character of a printable string is a
    control character, and one that is neither empty nor all spaces strips to something."""
    return value.isprintable() and value != "" and not value.isspace()


def _printable_ids(value: list[str]) -> bool:
    return all(map(_printable_id, value))


def _known_kind(value: Any) -> str:
    return "" if value in RECORD_TYPES else f"must be one of {sorted(RECORD_TYPES)}"


def _layer(value: Any) -> str:
    layers = sorted(LAYER_OF_KIND.values())
    return "" if value in layers else f"must be one of {layers}"


def _vector_bytes(value: Any) -> str:
    if not value or len(value) % 4:
        return "must hold a whole, non-zero number of float32 values (4 bytes each)"
    if not bool(np.isfinite(vector_from_bytes(value)).all()):
        return "must hold finite float32 values"
    return ""


def _extra(kind: str, name: str) -> Check | None:
    """The rule beyond the annotation, by field name (run once the type fits)."""
    if name in ID_FIELDS:
        return _plain_id
    if name in ID_LIST_FIELDS:
        return _plain_ids
    if name in KIND_FIELDS:
        return _known_kind
    if kind == "vector" and name == "layer":
        return _layer
    if kind == "vector" and name == "values":
        return _vector_bytes
    return None


_FAST_EXTRA = {_plain_id: _printable_id, _plain_ids: _printable_ids}


def _both(first: Check, then: Check) -> Check:
    def check(value: Any) -> str:
        # None passes a nullable field's type check and has no further rule
        return first(value) or ("" if value is None else then(value))
    return check


def _same(value: Any) -> Any:
    return value


def _schema(cls: type) -> list[tuple[str, Fits, Check, Any]]:
    """(field, fast path, check, default factory or MISSING) in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        check = _checker(hints[f.name])
        extra = _extra(cls.kind, f.name)
        default: Any = MISSING
        if f.default is not MISSING:
            default = functools.partial(_same, f.default)
        elif f.default_factory is not MISSING:
            default = f.default_factory
        out.append((f.name, _with_extra(_fits(hints[f.name]), extra),
                    check if extra is None else _both(check, extra), default))
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
    for name, fits, check, default in schema:
        value = data.get(name, MISSING)
        if value is MISSING:
            if default is MISSING:
                raise InvalidRecord(name, "is required")
            out[name] = default()
            continue
        test = fits.get(type(value), check)
        if test is not None and (test is check or not test(value)):
            problem = check(value)
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
