"""The run lanes of ``memorose up`` (the ``memorose/lane`` tag, one run at a time in each) and the
CPU share a backlog run takes.

``fresh``: the log sensor's ranges of new events, what an agent waits for. ``backlog``: a bulk
load's chunks, backfills, re-derivation, the lake. Both derive at once on a 2-core machine, and a
backlog chunk keeps both cores busy embedding; the fresh run, the Dagster daemon launching it and
the node serving ingest and retrieve then got a third of a core each. A backlog run lowers its
CPU priority (``BACKLOG_NICE``) as it starts: it still takes every cycle nothing else wants, and
waits when something fresh needs one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

LANE_TAG, FRESH_LANE, BACKLOG_LANE = "memorose/lane", "fresh", "backlog"
IN_BACKLOG = {LANE_TAG: BACKLOG_LANE}
BACKLOG_NICE = 10  # CFS weight 110 against a default thread's 1024: ~1/10 of a contended core
TASKS = Path("/proc/self/task")


def yield_cpu(tags: Mapping[str, str]) -> bool:
    """In a run of the backlog lane (by its ``tags``), every thread of this process gets at
    least ``BACKLOG_NICE``; threads it starts later inherit it. True in such a run.

    On Linux a nice value belongs to a thread, not to the process: each thread already running
    (the embedder's pool, the client's) is set by its id."""
    if tags.get(LANE_TAG) != BACKLOG_LANE:
        return False
    threads = [int(t.name) for t in TASKS.iterdir()] if TASKS.is_dir() else [0]
    for thread in threads:
        try:
            current = os.getpriority(os.PRIO_PROCESS, thread)
            if current < BACKLOG_NICE:
                os.setpriority(os.PRIO_PROCESS, thread, BACKLOG_NICE)
        except (ProcessLookupError, PermissionError) as exc:  # ended, or not ours to change
            log.debug("thread %s keeps its priority: %s", thread, exc)
    return True
