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

import asyncio
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

from warden.errors import InviteRefused, LemmyRateLimited, LemmyRefused, UpstreamError
from warden.membership import invites as rules
from warden.membership.gate import utc_now
from warden.membership.requirements import UserFacts
from warden.services import Services
from warden.web import peers
from warden.web.deps import ServicesDep
from warden.web.public_page import PageRefused, Session, Sessions, same_site, security_headers

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
            except PageRefused as exc:
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


def _sessions(services: Services) -> Sessions:
    if services.invite_sessions is None:
        services.invite_sessions = Sessions(services.settings.invites)
    sessions: Sessions = services.invite_sessions
    return sessions


def _enabled(services: Services) -> None:
    if services.invites is None or services.identity is None:
        raise PageRefused(404, "Invites are not enabled on this instance.")


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


def _back(services: Services, notice: str = "", error: str = "") -> RedirectResponse:
    """Back to the page with a message, signed so that nobody else's link can put
    words on this page (`/invites?error=Your+account+is+suspended...`)."""
    if not notice and not error:
        return RedirectResponse("/invites", status_code=303)
    sig = _sessions(services).sign(f"{notice}\0{error}")
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


def _checked(request: Request, services: Services, csrf: str) -> None:
    same_site(request)
    session = _sessions(services).get(request.cookies.get(COOKIE))
    expected = session.csrf.encode() if session else b""
    if session is None or not hmac.compare_digest(expected, csrf.encode("utf-8", "replace")):
        raise PageRefused(403, "The form expired; reload the page and try again.")


def _lemmy_problem(exc: UpstreamError) -> str:
    """Lemmy's failure in words for the user: its error code, never an address."""
    if isinstance(exc, LemmyRefused) and exc.lemmy_code:
        return f"Lemmy refused ({exc.lemmy_code})."
    return "the instance cannot be reached; try again soon."


async def _signed_in(request: Request, services: Services) -> tuple[Session, UserFacts] | None:
    session = _sessions(services).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    assert services.identity is not None
    try:
        facts = await services.identity.facts(session.token, client_ip=_address(request))
    except UpstreamError as exc:
        raise PageRefused(503, f"Your account cannot be checked: {_lemmy_problem(exc)}") from exc
    return (session, facts) if facts is not None else None


@router.get("", response_class=HTMLResponse)
async def page(
    request: Request,
    services: ServicesDep,
    notice: str = "",
    error: str = "",
    sig: str = "",
) -> HTMLResponse:
    """The sign-in form, or the signed-in user's balance, codes and invitees.
    `notice`/`error` are shown only with the signature Warden's own redirect made."""
    _enabled(services)
    if not _sessions(services).signed(f"{notice}\0{error}", sig):
        notice = error = ""
    signed = await _signed_in(request, services)
    if signed is None:
        return _render(request, notice=notice, error=error)
    session, facts = signed
    store = services.invites
    assert store is not None
    now = utc_now()
    account = await asyncio.to_thread(store.account, facts, now)
    codes = await asyncio.to_thread(store.invites_of, facts.person_id)
    invitees = await asyncio.to_thread(store.invitees_of, facts.person_id)
    policy = store.policy
    native = services.identity is not None and services.identity.lemmy.version == "v4"
    site = _site(services)
    how_to = (
        f"Share the code as an invite link: {site or 'your instance'}/signup?invite=<code>."
        if native
        else "Give the code to the person you invite; they paste it into the application"
        f" question when they sign up{f' at {site}' if site else ''}."
    )
    return _render(
        request,
        user=facts.name,
        csrf=session.csrf,
        balance=account.balance,
        per_period=policy.per_period,
        carry_cap=policy.carry_cap,
        next_refill=f"{policy.next_refill(now):%Y-%m-%d}",
        refusal=rules.creation_refusal(account, policy, now, facts),
        how_to=how_to,
        codes=[
            {
                "code": c.code,
                "state": c.state(now).value,
                "expires": f"{c.expires_at:%Y-%m-%d}",
            }
            for c in codes
            if not c.code.startswith("lemmy-ui-")
        ],
        invitees=[(name, f"{when:%Y-%m-%d}") for _, name, when in invitees],
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
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    totp: Annotated[str, Form()] = "",
) -> Response:
    """Forward the credentials to Lemmy with the client's address; keep only the
    session token it answers. Refused before Lemmy is asked when the form comes
    from another site, or the account or address failed too often (429)."""
    _enabled(services)
    same_site(request)
    assert services.identity is not None
    username, password, totp = (
        _field(username, "username"),
        _field(password, "password"),
        _field(totp, "totp"),
    )
    if not username.strip() or not password:
        raise PageRefused(400, "Enter your user name and password.")
    address = _address(request)
    throttle = _sessions(services).throttle
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
    sid = _sessions(services).create(token, settings.session_ttl_s)
    response = _back(services)
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
    request: Request, services: ServicesDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    _enabled(services)
    _checked(request, services, csrf)
    _sessions(services).drop(request.cookies.get(COOKIE))
    response = _back(services, notice="Signed out.")
    response.delete_cookie(COOKIE, path="/invites")
    return response


@router.post("/create")
async def create(
    request: Request, services: ServicesDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Spend one invite; on Lemmy 1.0 the code is a native link made with the user's token."""
    _enabled(services)
    _checked(request, services, csrf)
    signed = await _signed_in(request, services)
    if signed is None:
        return _back(services, error="Please sign in again.")
    session, facts = signed
    store = services.invites
    assert store is not None and services.identity is not None
    lemmy = services.identity.lemmy
    native = lemmy.version == "v4"
    now = utc_now()
    try:
        placeholder = f"pending-{secrets.token_hex(8)}" if native else None
        invite = await asyncio.to_thread(store.spend, facts, now, code=placeholder, native=native)
    except InviteRefused as exc:
        return _back(services, error=exc.message)
    if native:
        try:
            link = await lemmy.create_invite(session.token, invite.max_uses, invite.expires_at)
        except UpstreamError as exc:  # LemmyRefused included
            await asyncio.to_thread(
                store.refund, facts.person_id, invite.code, facts.name, exc.message
            )
            return _back(services, error=f"Lemmy did not create the invite: {_lemmy_problem(exc)}")
        await asyncio.to_thread(store.rename_code, invite.code, link.token)
        await asyncio.to_thread(store.record_native, link.token, link.expires_at, link.max_uses)
    return _back(services, notice="Invite created.")


@router.post("/revoke")
async def revoke(
    request: Request,
    services: ServicesDep,
    csrf: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
) -> Response:
    """Revoke one of the user's codes; an unused one goes back to the balance."""
    _enabled(services)
    _checked(request, services, csrf)
    code = _field(code, "code")
    signed = await _signed_in(request, services)
    if signed is None:
        return _back(services, error="Please sign in again.")
    session, facts = signed
    store = services.invites
    assert store is not None and services.identity is not None
    invite = await asyncio.to_thread(store.invite, code)
    if invite is None or invite.inviter_id != facts.person_id:
        return _back(services, error="There is no such invite of yours.")
    if invite.native:
        try:
            await services.identity.lemmy.revoke_invite(session.token, code)
        except LemmyRefused as exc:
            if exc.lemmy_code != "invalid_invite_token":  # already gone in Lemmy: fine
                return _back(
                    services, error=f"Lemmy did not revoke the invite: {_lemmy_problem(exc)}"
                )
        except UpstreamError as exc:
            return _back(services, error=f"Lemmy did not revoke the invite: {_lemmy_problem(exc)}")
    try:
        returned = await asyncio.to_thread(
            store.revoke, code, facts.person_id, utc_now(), facts.name
        )
    except InviteRefused as exc:
        return _back(services, error=exc.message)
    return _back(services, notice=f"Invite revoked; {returned} returned to your balance.")
