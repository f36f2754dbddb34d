"""The cyclic garbage collector in a process that serves one node (``memorose serve``).

A node keeps what it serves in memory for as long as it runs: the models, the indexes its
state machine maintains (``node/candidates.py``), the record cache (~215 MB of decoded records
at 100k events). None of it is cyclic garbage, yet every full collection walked all of it. A
node that derived a 100k-event history ran 46 full collections after its start: 10.1 s of
pauses, 120-634 ms each, growing with the store, and each found 0-18 objects to free. A
question asked during one waited for it (one of 373 ms landed among the timed questions after
the derivation).

So what lives long leaves the collector's reach, into the permanent generation
(``gc.freeze``), which no collection walks:
- at the start, after one full collection, what the start loaded (``create_app``);
- while the start-up warm-up decodes the store, what it decoded so far, every
  ``FREEZE_EVERY`` s and once at its end (``freeze_as_it_warms``);
- after every full collection, what survived it (``freeze_survivors``). The next full
  collection walks only what came since, and comes as rarely as before: the collector times it
  by the old generation's size at the last one, which freezing leaves as it was.

What it costs: an object that was frozen and later dies in a reference cycle is never freed
(acyclic ones, such as the records the cache evicts, are freed by their reference count as
ever). Survivors of a full collection are all reachable at that moment; what dies in a cycle
afterwards is what the full collections found above: 0-18 objects each.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from memorose_dagster.node.node import Node

FREEZE_EVERY = 0.25  # seconds between two freezes while the warm-up decodes the store
OLDEST = 2  # the generation a full collection collects


def freeze_survivors() -> Callable[[], None]:
    """From now on, what survives a full collection is frozen; returns what undoes that."""

    def after(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == OLDEST:
            gc.freeze()

    gc.callbacks.append(after)
    return lambda: gc.callbacks.remove(after)


def freeze_as_it_warms(node: Node) -> None:
    """What ``node``'s warm-up decodes, frozen as it comes (run beside it, on a thread): 30-170
    ms a full collection while the cache filled, several in the first ~10 s of questions.
    Every ``FREEZE_EVERY`` s rather than once per batch: a freeze also keeps whatever cyclic
    garbage the young generations hold at that moment (a few of the requests' objects at most,
    for those ~10 s)."""
    assert node.warmer is not None
    while node.warmer.is_alive():
        node.warmer.join(FREEZE_EVERY)
        gc.freeze()
