"""How pipeline runs are cut: daily partitions by ingest day, narrowed by a log range.

A sensor run carries ``LogRange(after, until)``: exactly the log entries committed since the
previous run, whatever day it is labelled with, or one chunk of a backlog cut by ``chunk``. A
backfill run carries no range (``until = 0``) and re-derives everything ingested on its
partition's day (UTC, from the time inside the event id); materializing without a partition
re-derives everything.
"""


from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from memorose_dagster.pipeline.asset_keys import MEMORY_ASSETS

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1, timezone="UTC")


class LogRange(dg.Config):
    after: int = Field(default=0, ge=0, description="exclusive log index")
    until: int = Field(default=0, ge=0, description=(
        "inclusive log index; 0 = the whole partition (backfill) or everything"))
    horizon: int = Field(default=0, ge=0, description=(
        "inclusive log index: only events up to it may defer a user's graph and insights to a "
        "later run (the end of the backlog this range is a chunk of, which later chunks "
        "derive); 0 = any event committed after the range"))


def range_run_config(after: int, until: int,
                     assets: Sequence[dg.AssetKey] = tuple(MEMORY_ASSETS),
                     horizon: int = 0) -> dict:
    """Run config giving each of ``assets`` (all memory assets) the same log range."""
    config = {"after": after, "until": until} | ({"horizon": horizon} if horizon else {})
    return {"ops": {key.to_python_identifier(): {"config": config} for key in assets}}


def chunk(entries: Sequence[tuple[int, int]], after: int, until: int,
          size: int) -> list[tuple[int, int]]:
    """(after, until] cut at entry boundaries into contiguous ranges of about ``size`` events
    each, given the (log index, events) of its entries with events: a range ends at the entry
    that brings it to ``size``; the last one ends at ``until`` and takes in a remainder under
    half of ``size``. Cutting the same entries again gives the same ranges."""
    cuts, count = [], 0
    for index, events in entries:
        count += events
        if count >= size:
            cuts.append(index)
            count = 0
    if cuts and count < size / 2:  # a small remainder (or none) joins the last range
        cuts.pop()
    bounds = [after, *cuts, until]
    return list(zip(bounds, bounds[1:], strict=False))
