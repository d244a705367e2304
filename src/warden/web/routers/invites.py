"""`/invites`: a user's own invites, server-rendered, without JavaScript.

Sign-in is forwarded to Lemmy's login API; Warden keeps the Lemmy session
token in memory only (keyed by a random cookie value, for `invites.session_ttl_s`)
and never the password. On Lemmy 1.0 a code is a native invite link made with
the user's own token; on 0.19 it is Warden's code, which the applicant pastes
into the application answer.

The page is public, so it is built as a target:

- Sign-in goes to Lemmy with the client's address (`X-Forwarded-For`, the
  address `web.peers` vouches for), so Lemmy's per-address login limit is the
  client's own and three bad tries by one person lock out nobody else; Warden
  counts failures per account and per address itself (`web.throttle`) and
  refuses before Lemmy is asked.
- Every form POST (login included: login CSRF) must come from this site: its
  `Origin` (else `Referer`) must name the host the request was sent to;
  cross-site, `null` or missing is 403. Forms also carry a per-session token,
  compared as bytes, so any value is a clear 403, never a 500.
- Every answer carries a Content-Security-Policy (`default-src 'none'`, the
  page's one style block by nonce, `form-action 'self'`, `frame-ancestors
  'none'`), `X-Frame-Options: DENY` and `Referrer-Policy: same-origin`.
- Lemmy's internal address (`lemmy.url`) is never shown; `invites.site_url`
  is, when set. Messages reach the page only with Warden's own signature, so
  no one else's link can put words on it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from warden.errors import (
    InviteRefused,
    LemmyRateLimited,
    LemmyRefused,
    PageRefused,
    UpstreamError,
    WardenError,
)
from warden.membership.gate import utc_now
from warden.membership.requirements import UserFacts
from warden.services import Services
from warden.services.invites import InvitesFeature, lemmy_problem
from warden.services.signins import Session, Sessions
from warden.web import peers
from warden.web.deps import InvitesDep, ServicesDep
from warden.web.public_page import same_site, security_headers

log = logging.getLogger(__name__)
COOKIE = "warden_invites"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_warned_proxy = False  # the misconfigured-proxy warning is logged once per process
FIELD_LIMITS = {"username": 255, "password": 1000, "totp": 16, "csrf": 64, "code": 200}


class GuardedRoute(APIRoute):
    """Every /invites route: refusals become the page (never FastAPI's JSON or a 500
    for a malformed form), and every answer gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except WardenError as exc:  # PageRefused, and 404 when invites are off
                response = _render(request, exc.status, error=exc.message)
            except RequestValidationError:
                response = _render(request, 400, error="The form could not be read; reload it.")
            return security_headers(response)

        return guarded


router = APIRouter(
    prefix="/invites", tags=["invites"], include_in_schema=False, route_class=GuardedRoute
)


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), cache_size=10
    )


def _site(services: Services) -> str:
    """Lemmy's public address for people, or nothing: never `lemmy.url` (internal)."""
    return (services.settings.invites.site_url or "").rstrip("/")


def _render(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    services: Services = request.app.state.services
    values.setdefault("site", _site(services))
    values.setdefault("base", "/invites")
    nonce = secrets.token_urlsafe(16)
    html = _env().get_template("invites.html").render(nonce=nonce, **values)
    return security_headers(HTMLResponse(html, status_code=status), nonce)  # type: ignore[return-value]


def _back(invites: InvitesFeature, notice: str = "", error: str = "") -> RedirectResponse:
    """Back to the page with a message, signed so that nobody else's link can put
    words on this page (`/invites?error=Your+account+is+suspended...`)."""
    if not notice and not error:
        return RedirectResponse("/invites", status_code=303)
    sig = invites.sessions.sign(f"{notice}\0{error}")
    query = f"notice={quote(notice)}&error={quote(error)}&sig={sig}"
    return RedirectResponse(f"/invites?{query}", status_code=303)


def _address(request: Request) -> str | None:
    """The client's address as Warden can vouch for it (`server.trusted_proxies`)."""
    global _warned_proxy
    address = peers.client_address(request)
    if (
        not _warned_proxy
        and address is not None
        and address.is_loopback
        and request.headers.get("x-forwarded-for")
        and not request.app.state.services.settings.server.trusted_proxies
    ):
        log.warning(
            "/invites is reached through a proxy that is not in server.trusted_proxies: "
            "every sign-in counts against the proxy's address, in Warden and in Lemmy"
        )
        _warned_proxy = True
    return str(address) if address is not None else None


def _field(value: str, name: str) -> str:
    if len(value) > FIELD_LIMITS[name]:
        raise PageRefused(400, f"The {name} field is too long.")
    return value


def _checked(request: Request, sessions: Sessions, csrf: str) -> None:
    same_site(request)
    session = sessions.get(request.cookies.get(COOKIE))
    expected = session.csrf.encode() if session else b""
    if session is None or not hmac.compare_digest(expected, csrf.encode("utf-8", "replace")):
        raise PageRefused(403, "The form expired; reload the page and try again.")


async def _signed_in(
    request: Request, services: Services, sessions: Sessions
) -> tuple[Session, UserFacts] | None:
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    try:
        facts = await services.identity.facts(session.token, client_ip=_address(request))
    except UpstreamError as exc:
        raise PageRefused(503, f"Your account cannot be checked: {lemmy_problem(exc)}") from exc
    return (session, facts) if facts is not None else None


@router.get("", response_class=HTMLResponse)
async def page(
    request: Request,
    services: ServicesDep,
    invites: InvitesDep,
    notice: str = "",
    error: str = "",
    sig: str = "",
) -> HTMLResponse:
    """The sign-in form, or the signed-in user's balance, codes and invitees.
    `notice`/`error` are shown only with the signature Warden's own redirect made."""
    if not invites.sessions.signed(f"{notice}\0{error}", sig):
        notice = error = ""
    signed = await _signed_in(request, services, invites.sessions)
    if signed is None:
        return _render(request, notice=notice, error=error)
    session, facts = signed
    now = utc_now()
    seen = await invites.service.overview(facts, now)
    policy = invites.store.policy
    site = _site(services)
    how_to = (
        f"Share the code as an invite link: {site or 'your instance'}/signup?invite=<code>."
        if seen.native
        else "Give the code to the person you invite; they paste it into the application"
        f" question when they sign up{f' at {site}' if site else ''}."
    )
    return _render(
        request,
        user=facts.name,
        csrf=session.csrf,
        balance=seen.account.balance,
        per_period=policy.per_period,
        carry_cap=policy.carry_cap,
        next_refill=f"{policy.next_refill(now):%Y-%m-%d}",
        refusal=seen.refusal,
        how_to=how_to,
        codes=[
            {
                "code": c.code,
                "state": c.state(now).value,
                "expires": f"{c.expires_at:%Y-%m-%d}",
            }
            for c in seen.codes
            if not c.code.startswith("lemmy-ui-")
        ],
        invitees=[(name, f"{when:%Y-%m-%d}") for _, name, when in seen.invitees],
        notice=notice,
        error=error,
    )


_LOGIN_ERRORS = {
    "incorrect_login": "Wrong user name or password.",
    "missing_totp_token": "Enter your two-factor code too.",
    "incorrect_totp_token": "That two-factor code is not right.",
}
#: Lemmy answers that count as a failed guess (missing_totp_token means the password was right)
_FAILURES = frozenset({"incorrect_login", "incorrect_totp_token"})


@router.post("/login")
async def login(
    request: Request,
    services: ServicesDep,
    invites: InvitesDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    totp: Annotated[str, Form()] = "",
) -> Response:
    """Forward the credentials to Lemmy with the client's address; keep only the
    session token it answers. Refused before Lemmy is asked when the form comes
    from another site, or the account or address failed too often (429)."""
    same_site(request)
    username, password, totp = (
        _field(username, "username"),
        _field(password, "password"),
        _field(totp, "totp"),
    )
    if not username.strip() or not password:
        raise PageRefused(400, "Enter your user name and password.")
    address = _address(request)
    throttle = invites.sessions.throttle
    refusal = throttle.check(username, address or "unknown")
    if refusal is not None:
        minutes = max(1, round(refusal.retry_after_s / 60))
        who = "this account" if refusal.by == "account" else "your address"
        refused = _render(
            request,
            429,
            error=f"Too many failed sign-ins for {who}; try again in {minutes} minutes.",
        )
        refused.headers["Retry-After"] = str(refusal.retry_after_s)
        return refused
    try:
        token = await services.identity.lemmy.login(
            username, password, totp or None, client_ip=address
        )
    except LemmyRefused as exc:
        if exc.lemmy_code in _FAILURES:
            throttle.failed(username, address or "unknown")
        message = _LOGIN_ERRORS.get(exc.lemmy_code, f"Lemmy refused the sign-in: {exc.lemmy_code}.")
        return _render(request, 401, error=message)
    except LemmyRateLimited:
        return _render(
            request, 429, error="The instance is limiting sign-ins from your address; try later."
        )
    except UpstreamError:
        return _render(request, 503, error="The instance cannot be reached; try again soon.")
    throttle.succeeded(username)
    settings = services.settings.invites
    sid = invites.sessions.create(token, settings.session_ttl_s)
    response = _back(invites)
    response.set_cookie(
        COOKIE,
        sid,
        max_age=int(settings.session_ttl_s),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
        path="/invites",
    )
    return response


@router.post("/logout")
async def logout(
    request: Request, invites: InvitesDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    _checked(request, invites.sessions, csrf)
    invites.sessions.drop(request.cookies.get(COOKIE))
    response = _back(invites, notice="Signed out.")
    response.delete_cookie(COOKIE, path="/invites")
    return response


@router.post("/create")
async def create(
    request: Request,
    services: ServicesDep,
    invites: InvitesDep,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Spend one invite; on Lemmy 1.0 the code is a native link made with the user's token."""
    _checked(request, invites.sessions, csrf)
    signed = await _signed_in(request, services, invites.sessions)
    if signed is None:
        return _back(invites, error="Please sign in again.")
    session, facts = signed
    try:
        await invites.service.create(facts, session.token)
    except InviteRefused as exc:
        return _back(invites, error=exc.message)
    return _back(invites, notice="Invite created.")


@router.post("/revoke")
async def revoke(
    request: Request,
    services: ServicesDep,
    invites: InvitesDep,
    csrf: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    """Revoke one of the user's codes; an unused one goes back to the balance."""
    _checked(request, invites.sessions, csrf)
    code = _field(code, "code")
    signed = await _signed_in(request, services, invites.sessions)
    if signed is None:
        return _back(invites, error="Please sign in again.")
    session, facts = signed
    try:
        returned = await invites.service.revoke(facts, session.token, code)
    except InviteRefused as exc:
        return _back(invites, error=exc.message)
    return _back(invites, notice=f"Invite revoked; {returned} returned to your balance.")
