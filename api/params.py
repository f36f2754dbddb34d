"""Ids in URL paths and query strings, checked by the rules of the body ``Id`` type.

A path or query id goes straight into a key lookup, where the key separator (\\x1f) or another
control character would reach into other keys; so it is refused, naming the parameter, like the
same id in a body. Servers percent-decode the path first: ``%1F`` arrives as \\x1f.
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request

from api.schemas import Id
from memorose_dagster.errors import InvalidInput

_ID: TypeAdapter[str] = TypeAdapter(Id)


def valid_id(value: str, name: str) -> str:
    """``value`` if it is a plain id, else a 400 ``invalid_input`` naming ``name``."""
    try:
        return _ID.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput(f"{name}: {exc.errors()[0]['msg']}", field=name) from exc


def path_id(request: Request, name: str) -> str:
    return valid_id(request.path_params[name], name)


def query_id(params: QueryParams, name: str, default: str | None = None) -> str | None:
    """The id ``name`` in the query string, checked; ``default`` when it is absent."""
    value = params.get(name)
    return default if value is None else valid_id(value, name)


def query_ids(params: QueryParams, name: str) -> set[str] | None:
    """Every value of a repeated id parameter, checked; None when there is none."""
    return {valid_id(value, name) for value in params.getlist(name)} or None
