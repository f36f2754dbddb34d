"""``read_ahead`` answers each item in order with its own read, runs the next reads while the
caller works on one (never more than ``READ_AHEAD`` ahead), and passes a read's error on."""

from __future__ import annotations

import threading

import pytest

from assets import selection


def test_reads_come_back_in_order_and_run_ahead_of_the_caller():
    started: list[int] = []
    cond = threading.Condition()

    def read(item: int) -> int:
        with cond:
            started.append(item)
            cond.notify_all()
        return item * 10

    seen = []
    for item, answer in selection.read_ahead(range(6), read):
        seen.append((item, answer))
        with cond:
            if item == 0:  # while the caller works on item 0, item 1 is read
                assert cond.wait_for(lambda: 1 in started, timeout=10)
            assert max(started) <= item + selection.READ_AHEAD
    assert seen == [(i, i * 10) for i in range(6)]
    assert started == list(range(6))


def test_a_failed_read_fails_the_caller_at_its_item():
    def read(item: int) -> int:
        if item == 2:
            raise ValueError("node said no")
        return item

    got = []
    with pytest.raises(ValueError, match="node said no"):
        for item, _ in selection.read_ahead(range(5), read):
            got.append(item)
    assert got == [0, 1]
