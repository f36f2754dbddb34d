"""The fast paths of ids: a ULID's digits by the C base32 encoder equal the digit-by-digit
Crockford encoding, and the id check refuses exactly the code points of its categories."""

from __future__ import annotations

import random
import unicodedata

from api import schemas
from memorose_dagster import ids


def test_ulid_digits_equal_the_crockford_reference():
    def reference(value: int) -> str:
        return "".join(ids.CROCKFORD[(value >> s) & 31] for s in range(125, -1, -5))

    rng = random.Random(7)
    for value in [0, 1, 31, 32, ids.ULID_MAX, 1 << 127, *(rng.getrandbits(128)
                                                           for _ in range(20_000))]:
        assert ids.encode_ulid(value) == reference(value)
    made = [ids.new_id() for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000


def test_the_id_check_refuses_exactly_controls_and_line_separators():
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates never reach the check (the body refuses them first)
        ch = chr(code)
        refused = unicodedata.category(ch) in schemas.NOT_IN_IDS
        assert bool(schemas.ID_FORBIDDEN.search(f"a{ch}b")) == refused, hex(code)
