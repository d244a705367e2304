"""Who is asking: the facts behind a Lemmy token, cached briefly.

`/authz` runs before every mapped API call, so asking Lemmy each time would
double its load. Facts are cached for a short TTL keyed by the SHA-256 of the
token (the token itself is never kept, logged or compared in clear); refused
tokens are cached too, so a flood with a bad token costs Lemmy one call per
TTL. Concurrent first requests for the same token share one Lemmy call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from warden.adapters.lemmy.client import LemmyApi
from warden.membership.requirements import UserFacts


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Identity:
    """Token → UserFacts (None: anonymous), through a small TTL cache."""

    def __init__(
        self,
        lemmy: LemmyApi,
        *,
        ttl_s: float = 30.0,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lemmy = lemmy
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, UserFacts | None]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[UserFacts | None]] = {}

    async def facts(self, token: str) -> UserFacts | None:
        """The person behind `token` (raises LemmyUnavailable when Lemmy cannot say)."""
        key = token_key(token)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[UserFacts | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            facts = await self.lemmy.my_user(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(facts)
            self._store(key, facts)
            return facts
        finally:
            del self._pending[key]

    def forget(self, token: str) -> None:
        self._cache.pop(token_key(token), None)

    def _store(self, key: str, facts: UserFacts | None) -> None:
        self._cache[key] = (self.clock() + self.ttl_s, facts)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
