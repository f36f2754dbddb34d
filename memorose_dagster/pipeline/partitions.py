"""How pipeline runs are cut: daily partitions by ingest day, narrowed by a log range.

A sensor run carries ``LogRange(after, until)``: exactly the log entries committed since the
previous run, whatever day it is labelled with. A backfill run carries no range (``until = 0``)
and re-derives everything ingested on its partition's day (UTC, from the time inside the event
id); materializing without a partition re-derives everything.
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


def range_run_config(after: int, until: int,
                     assets: Sequence[dg.AssetKey] = tuple(MEMORY_ASSETS)) -> dict:
    """Run config giving each of ``assets`` (all memory assets) the same log range."""
    return {"ops": {key.to_python_identifier(): {"config": {"after": after, "until": until}}
                    for key in assets}}
