"""What a public Warden page (today /invites) carries and checks on every request.

The page is reachable by anyone and signs people in, so it is built as a
target: every answer forbids framing and loads nothing but its own style
(`security_headers`); every form POST must come from the page itself
(`same_site`: login CSRF included); a refusal is a page with a message
(`PageRefused`), never FastAPI's JSON or a 500; sign-ins live in memory
(`Sessions`, with the failed-sign-in `LoginThrottle`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from warden.config import InviteSettings
from warden.web.throttle import LoginThrottle


class PageRefused(Exception):
    """A request the page refuses, shown as the page with the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def security_headers(response: Response, nonce: str | None = None) -> Response:
    """The headers every /invites answer carries (a rendered page sets its nonce first)."""
    style = f"style-src 'nonce-{nonce}'; " if nonce else ""
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'none'; {style}form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


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


def same_site(request: Request) -> None:
    """Refuse a form POST that another site made a browser send (CSRF, login CSRF)."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    host = request.headers.get("host", "").strip().lower()
    try:
        parts = urlsplit(source)
        scheme, netloc = parts.scheme, parts.netloc.lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, netloc = "", ""
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    if default:  # browsers leave the default port out of Origin; proxies may not of Host
        netloc, host = netloc.removesuffix(default), host.removesuffix(default)
    if not netloc or not host or netloc != host or scheme not in ("http", "https"):
        raise PageRefused(
            403,
            "This form was not sent from this site's invites page (cross-site posts are"
            " refused); open the page and try again.",
        )
