"""A pipeline step's hold on the users it derives (the node's leases, ``node/leases.py``).

``held`` asks for every user at once until the node grants them all, renews the lease in a
thread while the step runs, and releases it when the step ends, however it ends. A run killed
outright leaves its lease to expire after ``TTL`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator

from memorose_client import MemoroseClient
from memorose_client.errors import MemoroseAPIError, MemoroseConnectionError

log = logging.getLogger("memorose.pipeline")

TTL = 120.0  # seconds a lease lasts unless renewed: the longest a killed run blocks its users
RENEW_EVERY = 30.0
WAIT_LIMIT = 1800.0  # a step waits at most this long for its users, then fails (and retries)
FIRST_POLL, LAST_POLL = 0.05, 1.0  # seconds between asks while another step holds a user


@contextlib.contextmanager
def held(client: MemoroseClient, owner: str,
         users: Iterable[tuple[str, str]]) -> Iterator[float]:
    """Hold every one of ``users`` while the block runs; yields the seconds spent waiting."""
    wanted = sorted(set(users))
    if not wanted:
        yield 0.0
        return
    started = time.monotonic()
    pause = FIRST_POLL
    while True:
        try:
            client.acquire_lease(owner, wanted, TTL)
            break
        except MemoroseAPIError as exc:
            if exc.code != "lease_held" or time.monotonic() - started > WAIT_LIMIT:
                raise
        time.sleep(pause)  # another step holds some of these users: ask again shortly
        pause = min(pause * 2, LAST_POLL)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(client, owner, wanted, stop),
                               name="memorose-lease", daemon=True)
    renewer.start()
    try:
        yield time.monotonic() - started
    finally:
        stop.set()
        renewer.join()
        try:
            client.release_lease(owner)
        except (MemoroseAPIError, MemoroseConnectionError) as exc:  # it expires by itself
            log.warning("lease %s not released (%s); it expires in %.0f s", owner, exc, TTL)


def _renew(client: MemoroseClient, owner: str, users: list[tuple[str, str]],
           stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY):
        try:
            client.acquire_lease(owner, users, TTL)
        except (MemoroseAPIError, MemoroseConnectionError) as exc:
            log.warning("lease %s not renewed: %s", owner, exc)
