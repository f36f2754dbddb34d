"""numpy's OpenBLAS on one thread in a node's process.

A retrieve's vector search is one ``matrix @ question`` over a user's rows (~5,000 x 384 at 100k
events). OpenBLAS splits it over every core, and after each call its worker thread spins for
~0.1 s waiting for the next one. A node answering questions more often than that keeps a
thread spinning for good: on a 2-core machine, a whole core. Two clients side by side then got
70-80 questions/s at 22-24 ms of the node's CPU each; on one thread, 112-118 questions/s at 11 ms
(bench/README.md). A shorter spin (``OPENBLAS_THREAD_TIMEOUT``) was worse still: the worker,
asleep, takes up to a few ms to wake for each search.

The thread count is set in the loaded library, so it holds whatever imported numpy first.
``OPENBLAS_NUM_THREADS`` set by whoever starts the process is left as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# numpy's wheels carry OpenBLAS with prefixed symbols; a system OpenBLAS has the plain ones.
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


def _libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries loaded in this process (numpy loads its own on import)."""
    import numpy  # noqa: F401 - loads OpenBLAS

    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = {line.split()[-1] for line in maps.read_text().splitlines()
             if "openblas" in line.rsplit("/", 1)[-1].lower() and "/" in line}
    return [ctypes.CDLL(path) for path in sorted(paths)]


def _function(library: ctypes.CDLL, names: tuple[str, ...]):
    return next((getattr(library, name) for name in names if hasattr(library, name)), None)


def threads() -> list[int]:
    """The thread count of each OpenBLAS loaded in this process."""
    getters = [_function(library, _GETTERS) for library in _libraries()]
    return [getter() for getter in getters if getter is not None]


def one_thread() -> bool:
    """Every loaded OpenBLAS on one thread, unless ``OPENBLAS_NUM_THREADS`` says otherwise;
    True if one was set."""
    if os.environ.get("OPENBLAS_NUM_THREADS"):
        log.info("OpenBLAS threads left as OPENBLAS_NUM_THREADS=%s",
                 os.environ["OPENBLAS_NUM_THREADS"])
        return False
    return set_threads(1)


def set_threads(count: int) -> bool:
    """Every loaded OpenBLAS on ``count`` threads; True if there was one to set."""
    setters = [_function(library, _SETTERS) for library in _libraries()]
    for setter in setters:
        if setter is not None:
            setter(count)
    return any(setter is not None for setter in setters)
