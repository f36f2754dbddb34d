"""The fast paths of ids: a ULID's digits from the table of digit pairs, and a batch's ids
made in a row, equal the digit-by-digit Crockford encoding; the id check refuses exactly the
code points of its categories."""

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


def test_ids_made_in_a_row_are_consecutive_values_and_carry_across_digits(monkeypatch):
    """A batch's ids share their first 22 digits, encoded once: a run that crosses the low 20
    bits and the 80 random bits (into the milliseconds) still encodes every value."""
    ms = 1_700_000_000_000
    last = (ms << 80) | ((1 << 80) - 700)  # 700 below the next millisecond, which is a carry
    monkeypatch.setattr(ids, "_last_id", last)
    made = ids.new_ids(1500, ms)
    assert made == [ids.encode_ulid(last + 1 + i) for i in range(1500)]
    assert ids.id_time_ms(made[0]) == ms and ids.id_time_ms(made[-1]) == ms + 1
    after = ids.new_ids(3, ms)  # the clock has not moved: still after the run
    assert after[0] > made[-1] and after == sorted(after)
    assert ids.new_ids(0) == []


def test_the_id_check_refuses_exactly_controls_and_line_separators():
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue  # surrogates never reach the check (the body refuses them first)
        ch = chr(code)
        refused = unicodedata.category(ch) in schemas.NOT_IN_IDS
        assert bool(schemas.ID_FORBIDDEN.search(f"a{ch}b")) == refused, hex(code)
