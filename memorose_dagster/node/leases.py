"""Derivation leases: which pipeline step derives which users' memories right now.

Two pipeline runs may overlap (``memorose up`` runs a fresh range beside a backlog chunk), but
two steps must not derive one user's memories at once: each reads the user's stored memories,
decides merges and supersedes against them, and commits, and two such read-decide-commit
rounds interleaved could each miss what the other adds. So a step that derives (L1, graph, L2,
decay) first leases its users here, all of them or none (a step never holds some while waiting
for others, so two steps cannot wait on each other), and waits while another step holds any.

Leases are advisory and kept in the memory of the node the pipeline talks to: not replicated
(a run's lease on one node does not stop a run talking to another; the pipeline's runs share
one URL list, so they lease where they commit), lost when the node restarts, and expiring
after ``ttl`` unless renewed, so a killed run blocks nobody for long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

User = tuple[str, str]  # (tenant, user_id)

MAX_USERS = 100_000  # users one lease request may name
MAX_TTL = 3600.0


class Leases:
    """Thread-safe table of user -> (owner, expiry)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[User, tuple[str, float]] = {}

    def acquire(self, owner: str, users: Iterable[User], ttl: float) -> dict[User, str]:
        """Lease every one of ``users`` to ``owner`` for ``ttl`` seconds (renewing those it
        holds), or none: the users another owner holds, with their owner (empty: granted)."""
        wanted = set(users)
        with self._lock:
            now = self._clock()
            self._expire(now)
            busy = {u: self._held[u][0] for u in wanted
                    if u in self._held and self._held[u][0] != owner}
            if not busy:
                for user in wanted:
                    self._held[user] = (owner, now + ttl)
            return busy

    def release(self, owner: str) -> int:
        """Drop every lease of ``owner``; how many it held."""
        with self._lock:
            mine = [u for u, (o, _) in self._held.items() if o == owner]
            for user in mine:
                del self._held[user]
            return len(mine)

    def held(self) -> dict[str, list[User]]:
        """Owner -> the users it holds, leases in force only."""
        with self._lock:
            self._expire(self._clock())
            out: dict[str, list[User]] = {}
            for user, (owner, _) in sorted(self._held.items()):
                out.setdefault(owner, []).append(user)
            return out

    def _expire(self, now: float) -> None:
        for user in [u for u, (_, until) in self._held.items() if until <= now]:
            del self._held[user]
