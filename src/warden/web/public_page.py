"""What a public Warden page (today /invites) carries and checks on every request.

The page is reachable by anyone and signs people in, so it is built as a
target: every answer forbids framing and loads nothing but its own style
(`security_headers`); every form POST must come from the page itself
(`same_site`: login CSRF included); a refusal is a page with a message
(`PageRefused`, in errors.py), never FastAPI's JSON or a 500; sign-ins live in
memory (services/signins.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from warden.errors import PageRefused


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
