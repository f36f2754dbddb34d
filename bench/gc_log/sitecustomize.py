"""Logs a served node's collections, for ``bench/gc_pauses.py`` to read.

Put this folder on ``PYTHONPATH`` (as an absolute path: a bench starts its node in another
folder) and name a log prefix; every ``memorose serve`` process started with both appends a
line per full collection, and per younger one that took over 1 ms, to ``PREFIX.PID``:

    PYTHONPATH=$PWD/bench/gc_log MEMOROSE_GC_LOG=/tmp/gc python bench/realistic.py --big
    python bench/gc_pauses.py /tmp/gc

The callback runs in Python twice per collection, young ones included: it slows what
allocates the most (a retrieve's ``sources`` stage p99 went from ~4 to 27-78 ms in full runs).
Read the pauses from such a run, not its latency rows.
"""

import gc
import os
import sys
import time

_PREFIX = os.environ.get("MEMOROSE_GC_LOG")

if _PREFIX and "serve" in sys.argv:
    _log = open(f"{_PREFIX}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115 - the process's life
    _started = [0.0]

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _started[0]) * 1000
        if info["generation"] == 2 or ms > 1:
            _log.write(f"{time.time():.3f} gen{info['generation']} {ms:.2f}ms "
                       f"collected={info['collected']} frozen={gc.get_freeze_count()}\n")

    gc.callbacks.append(_timed)
