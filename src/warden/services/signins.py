"""Sign-ins to a public Warden page (today /invites), kept in memory.

Warden keeps the Lemmy session token a sign-in produced, under a random id the
browser holds as a cookie, and never the password. A restart signs everyone out
(and forgets the failed-sign-in counts of `LoginThrottle`), which is the safe
direction for the former. Messages the page shows are signed with a per-process
key, so no one else's link can put words on it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from warden.config import InviteSettings
from warden.services.throttle import LoginThrottle


@dataclass
class Session:
    token: str  # the Lemmy session token (in memory only)
    csrf: str
    expires: float


class Sessions:
    """In-memory sign-ins and the failed-sign-in counts; a restart signs everyone out
    and forgets the counts, which is the safe direction for the former."""

    def __init__(self, settings: InviteSettings) -> None:
        self._by_id: dict[str, Session] = {}
        self._key = secrets.token_bytes(32)  # signs the page's messages; per process
        self.throttle = LoginThrottle(
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_window_s,
        )

    def create(self, token: str, ttl_s: float) -> str:
        self._prune()
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(token, secrets.token_urlsafe(16), time.monotonic() + ttl_s)
        return sid

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None or session.expires < time.monotonic():
            return None
        return session

    def sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode("utf-8", "replace"), "sha256").hexdigest()[:32]

    def signed(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text).encode(), signature.encode("utf-8", "replace"))

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]
