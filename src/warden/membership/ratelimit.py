"""Counting uses against rate limits: the port, and the in-memory counter.

Rules say "3 uploads a day in the first 30 days"; judging that needs state
shared by every request. `UsageCounter` is the port: `acquire` records one use
under every claim at once, or none when any claim is already full. The
in-memory counter below is exact for one process (a lock makes the check and
the record one step, so concurrent requests cannot both take the last slot).

Several `warden serve` replicas each hold their own memory and would each
allow the full count: multi-replica deployments need a database-backed
counter implementing the same port (the store layer's job; pass it as
`usage` to `build_access_gate`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class Claim:
    """One use to record under `key`, allowed while fewer than `limit` in `window`."""

    key: str
    limit: int
    window: timedelta


class UsageCounter(Protocol):
    """Sliding-window use counts, shared by every request of a deployment."""

    def acquire(self, claims: Sequence[Claim], now: datetime) -> Claim | None:
        """Record one use under every claim and return None; or, when any claim
        is full, record nothing and return the first full claim."""
        ...

    def used(self, key: str, window: timedelta, now: datetime) -> int:
        """Uses recorded under `key` in the `window` before `now`."""
        ...


class MemoryUsageCounter:
    """An exact sliding-window log per key, for one process."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._log: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def acquire(self, claims: Sequence[Claim], now: datetime) -> Claim | None:
        with self._lock:
            for claim in claims:
                if self._count(claim.key, claim.window, now) >= claim.limit:
                    return claim
            for claim in claims:
                self._log.setdefault(claim.key, deque()).append(now)
            if len(self._log) > self._max_keys:
                self._forget_idle(now, max(c.window for c in claims))
            return None

    def used(self, key: str, window: timedelta, now: datetime) -> int:
        with self._lock:
            return self._count(key, window, now)

    def _count(self, key: str, window: timedelta, now: datetime) -> int:
        entries = self._log.get(key)
        if not entries:
            return 0
        start = now - window
        while entries and entries[0] <= start:  # a key always has the same window
            entries.popleft()
        return sum(1 for t in entries if t <= now)

    def _forget_idle(self, now: datetime, window: timedelta) -> None:
        for key in [k for k, v in self._log.items() if not v or v[-1] <= now - window]:
            del self._log[key]
