"""The log sensor's cursor: how far the log has been handed to runs, and the backlogs (stretches
too big for one run) still being handed out, a few chunks at a time as the run queue drains.

Requesting a whole backlog's chunks in one tick made the tick as long as creating them all (about
a second a run on a busy 2-core machine: 12 s for a 10,000-event bulk load, minutes for 100,000),
and no fresh range could be requested meanwhile. Topping up the queue keeps every tick short.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from memorose_dagster.pipeline.partitions import chunk
from memorose_dagster.pipeline.resources import ClusterResource


@dataclass
class LogCursor:
    """``handed``: every event up to this log index is in a requested run or in a backlog.
    ``backlogs``: (next, end) of each backlog, oldest first: (next, end] is still to request.
    ``draining``: chunks of a backlog may still be queued or running."""

    handed: int = 0
    backlogs: list[tuple[int, int]] = field(default_factory=list)
    draining: bool = False

    @classmethod
    def parse(cls, raw: str | None) -> LogCursor:
        if not raw:
            return cls()
        if raw.isdigit():  # no backlog: the log index alone, as before backlogs
            return cls(int(raw))
        state = json.loads(raw)
        return cls(int(state["handed"]), [(int(a), int(b)) for a, b in state["backlogs"]],
                   bool(state["draining"]))

    def dump(self) -> str:
        if not self.backlogs and not self.draining:
            return str(self.handed)
        return json.dumps({"handed": self.handed, "draining": self.draining,
                           "backlogs": [list(b) for b in self.backlogs]})


def fresh_tail(entries: Sequence[tuple[int, int]], after: int, most: int) -> int:
    """Where the trailing entries holding at most ``most`` events begin: the log index of the
    entry before them (``after`` if they all fit). Events sent after a bulk load, within the
    tick that finds it, are derived as fresh events, not after the whole backlog."""
    count = 0
    for index, events in reversed(entries):
        if count + events > most:
            return index
        count += events
    return after


def next_chunks(cursor: LogCursor, cluster: ClusterResource, wanted: int,
                size: int) -> list[tuple[int, int, int]]:
    """Up to ``wanted`` next chunks of the oldest backlogs as (after, until, horizon), the
    horizon being their backlog's end; ``cursor`` moves past them. The chunks are those cutting
    the whole backlog at once would give: only the entries they need are counted, and a last
    range that ends past what was counted is left for later."""
    out: list[tuple[int, int, int]] = []
    while len(out) < wanted and cursor.backlogs:
        after, end = cursor.backlogs[0]
        entries, counted = cluster.event_counts(after, end, (wanted - len(out) + 1) * size)
        ranges = chunk(entries, after, end, size)
        ranges = (ranges if counted >= end else ranges[:-1])[:wanted - len(out)]
        if not ranges:
            break
        out += [(a, u, end) for a, u in ranges]
        if ranges[-1][1] >= end:
            cursor.backlogs.pop(0)
        else:
            cursor.backlogs[0] = (ranges[-1][1], end)
    return out
