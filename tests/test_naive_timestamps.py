"""An ISO timestamp without a zone is UTC, whatever the node's local time zone: it was read in
local time, so the same event stored a different instant on nodes in different zones."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from api.schemas import EventIn

EVENT = {"user_id": "u1", "stream_id": "s1", "content": "moved to Lisbon"}
NEW_YEAR_2024 = 1704067200.0  # 2024-01-01T00:00:00Z


@pytest.fixture(params=["America/New_York", "Asia/Kolkata"])
def local_zone(request, monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    assert time.timezone != 0  # the zone took: local time is not UTC
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("sent", "seconds"), [
    ("2024-01-01T00:00:00", NEW_YEAR_2024),
    ("2024-01-01 00:00:00.5", NEW_YEAR_2024 + 0.5),
    ("2024-01-01T00:00:00Z", NEW_YEAR_2024),
    ("2024-01-01T01:00:00+01:00", NEW_YEAR_2024),
    (NEW_YEAR_2024, NEW_YEAR_2024),
])
def test_a_naive_timestamp_is_utc(local_zone, sent, seconds):
    assert EventIn.model_validate({**EVENT, "timestamp": sent}).timestamp.timestamp() == seconds


def test_the_range_is_utc_in_any_zone(local_zone):
    """The last second of 9999 and the first of 1970, sent without a zone, are in range."""
    for edge in ("9999-12-31T23:59:59", "1970-01-01T00:00:00"):
        EventIn.model_validate({**EVENT, "timestamp": edge})


def test_a_stored_naive_timestamp_is_utc(local_zone, client):
    made = client.post("/api/v1/events", json={**EVENT, "timestamp": "2024-01-01T00:00:00"})
    assert made.status_code == 201, made.text
    stored = client.get(f"/api/v1/events/{made.json()['event_id']}").json()
    assert stored["timestamp"] == NEW_YEAR_2024
