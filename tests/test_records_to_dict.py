"""A record's ``to_dict`` is ``dataclasses.asdict`` plus its kind: the same values, containers
copied all the way down (changing the dict never changes the record), for every record type."""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, fields
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memorose_dagster.records import RECORD_TYPES

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=10)


def strategy(hint: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    simple = {str: st.text(max_size=8), float: st.floats(allow_nan=False), bool: st.booleans(),
              int: st.integers(-(2**63), 2**63), bytes: st.binary(max_size=8)}
    if hint in simple:
        return simple[hint]
    if origin is list:
        return st.lists(strategy(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(st.text(max_size=4), JSON, max_size=4)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([st.none() if a is type(None) else strategy(a) for a in args])
    raise AssertionError(f"no strategy for {hint!r}")


def records() -> st.SearchStrategy[Any]:
    return st.one_of([st.builds(cls, **{f.name: strategy(typing.get_type_hints(cls)[f.name])
                                        for f in fields(cls)})
                      for cls in RECORD_TYPES.values()])


@settings(max_examples=400, deadline=None)
@given(records())
def test_to_dict_is_asdict_and_its_kind(record):
    out = record.to_dict()
    assert out == {**asdict(record), "kind": record.kind}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, list | dict):
            assert out[f.name] is not value
            before = asdict(record)
            if isinstance(value, list):
                out[f.name].append("changed")
            else:
                out[f.name]["changed"] = 1
            assert asdict(record) == before


def test_nested_containers_are_copied_too():
    event = RECORD_TYPES["event"](event_id="E", tenant="t", user_id="u", stream_id="s",
                                  content="c", timestamp=1.0, metadata={"a": {"b": [1, {"c": 2}]}})
    out = event.to_dict()
    out["metadata"]["a"]["b"][1]["c"] = 3
    assert event.metadata == {"a": {"b": [1, {"c": 2}]}}
