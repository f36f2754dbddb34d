"""The validator's fast path (exact types, cheap sufficient tests) decides every record as the
field checks alone do: the same record back, or the same field and problem refused."""

from __future__ import annotations

from dataclasses import MISSING
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memorose_dagster.log.validate import SCHEMAS, InvalidRecord, validate_record

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["", " ", "\t", "u1", "a\x00b", "a\x7f", "\u2028", "a\u200bb", "\x1f",
                     "l0", "l1", "event", "nope"]),
    st.binary(max_size=12),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 3)), inner, max_size=4)),
    max_leaves=12)


def reference(data: dict[str, Any]) -> dict[str, Any] | tuple[str, str]:
    """What the field checks alone decide, one field after another."""
    out = {}
    for name, _fits, check, default in SCHEMAS[data["kind"]]:
        if name not in data:
            if default is MISSING:
                return name, "is required"
            out[name] = default()
            continue
        problem = check(data[name])
        if problem:
            return name, problem
        out[name] = data[name]
    return {**out, "kind": data["kind"]}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(SCHEMAS)))
    data: dict[str, Any] = {"kind": kind}
    for name, *_ in SCHEMAS[kind]:
        if draw(st.integers(0, 9)) == 0:
            continue  # absent
        data[name] = draw(VALUES)
    return data


@settings(max_examples=1500, deadline=None)
@given(records())
def test_the_fast_path_decides_as_the_checks_do(data: dict[str, Any]) -> None:
    want = reference(data)
    try:
        got: dict[str, Any] | tuple[str, str] = validate_record(data)
    except InvalidRecord as exc:
        got = (exc.field, exc.problem)
    assert got == want


def test_valid_records_of_every_kind_pass_the_fast_path() -> None:
    """The generator above mostly makes bad records; these are good, of plain types."""
    good = {"event_id": "01J", "tenant": "default", "user_id": "u 1", "stream_id": "s",
            "content": "hello", "timestamp": 1.5, "metadata": {"turn": 3, "who": "Ann",
                                                                 "deep": {"a": [1, None]}}}
    event = validate_record({"kind": "event", **good})
    assert event == {**good, "content_type": "text", "log_index": 0, "kind": "event"}
    for bad, field in [({"user_id": "u\x00"}, "user_id"), ({"user_id": "  "}, "user_id"),
                       ({"timestamp": float("nan")}, "timestamp"),
                       ({"metadata": {"x": 2**64}}, "metadata")]:
        try:
            validate_record({"kind": "event", **good, **bad})
        except InvalidRecord as exc:
            assert exc.field == field
        else:
            raise AssertionError(f"{bad} passed")
