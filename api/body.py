"""Request bodies: a JSON media type, a size limit, and only JSON that the store can carry.

Python's json module reads more than JSON (NaN, Infinity, ``1e400`` as inf, integers of any
size, lone surrogates from ``\\ud800`` escapes), and msgpack and UTF-8 refuse some of it: such a
value, once committed, broke every later read of it. So a body is checked as a whole, before
the schema sees it, and a refusal names the path to the value (``events.0.metadata.score``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request

from memorose_dagster.errors import InvalidInput, MemoroseError, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 32  # objects and arrays in a body nest at most this deep, the body itself is 1
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what msgpack stores: int64 and uint64
# An integer literal longer than this is outside INT_MIN..INT_MAX whatever its digits; reading
# it as INT_MAX + 1 lets the check below name its path, and spares int() a 4,300-digit parse.
INT_CHARS = len(str(INT_MIN))


class UnsupportedMediaType(MemoroseError):
    status = 415
    code = "unsupported_media_type"


def _check_media_type(request: Request) -> None:
    """JSON as ``application/json`` or ``application/*+json``; no content-type is read as JSON
    too (a hand-written request often sends none), but a declared other type is refused."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    kind, _, sub = media.partition("/")
    if not media or (kind == "application" and (sub == "json" or sub.endswith("+json"))):
        return
    raise UnsupportedMediaType(f"the body must be JSON sent as application/json (or "
                               f"application/*+json), not {media}")


def _int(literal: str) -> int:
    return int(literal) if len(literal) <= INT_CHARS else INT_MAX + 1


# A lone surrogate as an escape (``\\ud800``); one decoded from the bytes as they came
# (``surrogatepass``) can only be in a text that is not ASCII. A literal prefix keeps the scan at
# memchr speed: one regex of alternatives that also looked for long digit runs, exponents, NaN
# and Infinity took 4 ms of a 500-event body, ten times its parse.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Numbers:
    """``json.loads`` hooks that read numbers as it does by default and note one that msgpack
    cannot carry (an integer out of range, a float that overflowed to inf, NaN, Infinity), so
    that only such a body gets the walk over every value that names its path. The hooks cost a
    500-event body 0.2 ms."""

    def __init__(self) -> None:
        self.suspect = False

    def int_(self, literal: str) -> int:
        if len(literal) < 19:  # shorter than any integer outside INT_MIN..INT_MAX
            return int(literal)
        self.suspect = True
        return _int(literal)

    def float_(self, literal: str) -> float:
        value = float(literal)
        if value - value != 0.0:  # inf (or nan)
            self.suspect = True
        return value

    def constant(self, name: str) -> float:
        self.suspect = True
        return float(name)  # NaN, Infinity, -Infinity


def _parse(text: str, numbers: _Numbers) -> Any:
    try:
        return json.loads(text, parse_int=numbers.int_, parse_float=numbers.float_,
                          parse_constant=numbers.constant)
    except RecursionError as exc:
        raise InvalidInput(f"the body nests deeper than {MAX_DEPTH} levels", field="") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}", field="") from exc


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """How deep objects and arrays nest in ``value`` (a scalar: 0), looking at containers
    only, and no deeper than ``limit``. Level by level: a recursion per container took a
    500-event body 0.9 ms, this 0.2 ms."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level and depth < limit:
        depth += 1
        level = [child for container in level
                 for child in (container.values() if type(container) is dict else container)
                 if type(child) is dict or type(child) is list]
    return depth


def _check_value(value: Any, path: str, depth: int) -> None:
    """Refuse, by path, what msgpack, UTF-8 or a JSON reply cannot carry."""
    where = path or "the body"
    if isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{where}: nested deeper than {MAX_DEPTH} levels", field=path)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and not _utf8(key):
                raise InvalidInput(f"{where}: a key is not valid Unicode (a lone surrogate)",
                                   field=path)
            _check_value(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, str) and not _utf8(value):
        raise InvalidInput(f"{where}: not valid Unicode (a lone surrogate)", field=path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where}: must be a finite number (not NaN, Infinity or beyond "
                           f"1.8e308)", field=path)
    elif isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise InvalidInput(f"{where}: integers must be within -2**63..2**64-1", field=path)


async def read_raw(request: Request) -> bytearray:
    """The body's bytes: 415 for a non-JSON type, 413 over the limit (declared or read). One
    buffer, no list of chunks to join."""
    _check_media_type(request)
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over the {limit}-byte limit", limit=limit)
    raw = bytearray()
    async for chunk in request.stream():
        if len(raw) + len(chunk) > limit:
            raise PayloadTooLarge(f"request body over the {limit}-byte limit", limit=limit)
        raw += chunk
    return raw


def decode(raw: bytes | bytearray) -> str:
    """The body as text, decoded as ``json.loads`` decodes bytes (UTF-8, -16 or -32, lone
    surrogates passed on to be refused by path)."""
    try:
        return raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}", field="") from exc


def parse_object(text: str) -> dict[str, Any]:
    """A body's text as a JSON object the store can carry, or InvalidInput naming what not."""
    numbers = _Numbers()
    suspect = bool(_ESCAPED_SURROGATE.search(text)
                   or (not text.isascii() and _SURROGATE.search(text)))
    data = _parse(text, numbers)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", field="")
    if suspect or numbers.suspect or _depth(data) > MAX_DEPTH:
        _check_value(data, "", 1)
    return data


async def read_body(request: Request, model: type[M]) -> M:
    """The body as ``model``: 415 for a non-JSON type, 413 over the limit, 400 for the rest.
    The bytes are gone before parsing, the text once parsed: a body costs its text and its
    parsed value at the peak, not also two copies of its bytes (8 MB: 34 MB -> 17 MB)."""
    text = decode(await read_raw(request))
    data = parse_object(text)
    del text
    return model.model_validate(data)
