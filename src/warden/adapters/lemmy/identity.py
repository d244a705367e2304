"""Who is asking: the facts behind a Lemmy token, cached briefly.

`/authz` runs before every mapped API call, so asking Lemmy each time would
double its load. Facts are cached for a short TTL keyed by the SHA-256 of the
token (the token itself is never kept, logged or compared in clear); tokens
Lemmy definitely refused are cached too, so a flood with a bad token costs
Lemmy one call per TTL. Failures (rate limit, outage, an answer Warden cannot
read) are never cached: the next request asks again. Concurrent first
requests for the same token share one Lemmy call.

A credential that cannot be a Lemmy token is refused without asking Lemmy:
Lemmy's tokens are JWTs made by `jsonwebtoken::encode` with the default
header, HS256 (LemmyNet/lemmy 0.19.3 crates/api_common/src/claims.rs:39-53;
1.0.0-beta.1 crates/api/api_utils/src/claims.rs:37-61), i.e. three unpadded
base64url segments, and anything else fails `decode` and logs nobody in (0.19.3
claims.rs:28-29, crates/api/src/lib.rs:149-151; 1.0.0-beta.1 claims.rs:31).
Junk tokens therefore cost Lemmy nothing at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable

from warden.adapters.lemmy.client import LemmyApi
from warden.membership.requirements import UserFacts

_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_TOKEN_BYTES = 4096


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def could_be_jwt(token: str) -> bool:
    """Whether `token` has the shape of a JWT Lemmy could have issued.

    Three unpadded base64url segments, the first a JSON object header with an
    `alg`; anything else fails Lemmy's `jsonwebtoken::decode` before any look-up.
    """
    if len(token) > MAX_TOKEN_BYTES or not _JWT.fullmatch(token):
        return False
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


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

    async def facts(self, token: str, client_ip: str | None = None) -> UserFacts | None:
        """The person behind `token`; None when it logs nobody in.

        Raises UpstreamError (LemmyUnavailable, LemmyRateLimited, LemmyError)
        when Lemmy cannot say; `client_ip` is forwarded so Lemmy charges the
        look-up to the user's own rate-limit bucket.
        """
        if not could_be_jwt(token):
            return None
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
            facts = await self.lemmy.my_user(token, client_ip)
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
