"""Failed sign-ins counted per account and per address, so /invites cannot be a
password-guessing front end for Lemmy.

Why in Warden and not only in Lemmy: Lemmy limits logins per address (its
`register` bucket, 3 an hour by default), and Warden forwards the client's
address so that bucket is the client's own — but a guesser with many
addresses, or one aiming at one account, would still reach Lemmy. Warden
refuses a sign-in before asking Lemmy once an account, or an address, has
failed too often within the window; a success clears the account's count.

In memory, per process, and bounded: each table keeps at most `max_keys`
keys (oldest dropped first, after the expired ones), and each key at most as
many timestamps as its limit. A restart forgets the counts; several replicas
count separately (each still bounds what reaches Lemmy). Locking an account's
/invites sign-in for a window is the price of the per-account limit; Lemmy's
own login is not affected.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

#: Keys each table remembers at most (about 100 bytes each with their timestamps).
MAX_KEYS = 10_000


class _Window:
    """Failure timestamps per key within `window_s`, at most `limit` kept per key."""

    def __init__(self, limit: int, window_s: float, max_keys: int) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._keys: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        stamps = self._keys.get(key)
        if stamps is None:
            return 0.0
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if not stamps:
            del self._keys[key]
            return 0.0
        if len(stamps) < self.limit:
            return 0.0
        return max(stamps[0] + self.window_s - now, 0.0)

    def fail(self, key: str, now: float) -> None:
        stamps = self._keys.get(key)
        if stamps is None:
            if len(self._keys) >= self.max_keys:
                self._evict(now)
            stamps = self._keys[key] = deque(maxlen=max(self.limit, 1))
        self._keys.move_to_end(key)
        stamps.append(now)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)

    def _evict(self, now: float) -> None:
        for key in [k for k, v in self._keys.items() if not v or v[-1] <= now - self.window_s]:
            del self._keys[key]
        while len(self._keys) >= self.max_keys:
            self._keys.popitem(last=False)  # the least recently failed


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in is refused before Lemmy is asked, and for how long."""

    by: str  # "account" or "address"
    retry_after_s: int


class LoginThrottle:
    """Per-account and per-address failure windows; thread-safe."""

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_s: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = _Window(per_account, window_s, max_keys)
        self.addresses = _Window(per_address, window_s, max_keys)
        self.clock = clock
        self._lock = threading.Lock()

    @staticmethod
    def account_key(username_or_email: str) -> str:
        # Lemmy finds the account case-insensitively, so "Alice" and "alice" are one
        return username_or_email.strip().casefold()

    def check(self, account: str, address: str | None) -> Refusal | None:
        """A refusal when the account or the address used up its failures."""
        now = self.clock()
        with self._lock:
            wait = self.accounts.wait(self.account_key(account), now)
            if wait > 0:
                return Refusal("account", math.ceil(wait))
            if address is not None:
                wait = self.addresses.wait(address, now)
                if wait > 0:
                    return Refusal("address", math.ceil(wait))
        return None

    def failed(self, account: str, address: str | None) -> None:
        now = self.clock()
        with self._lock:
            self.accounts.fail(self.account_key(account), now)
            if address is not None:
                self.addresses.fail(address, now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self.accounts.clear(self.account_key(account))
