"""`/invites`: a user's own invites, server-rendered, without JavaScript.

Sign-in is forwarded to Lemmy's login API; Warden keeps the Lemmy session
token in memory only (keyed by a random cookie value, for `invites.session_ttl_s`)
and never the password. Every form carries a per-session CSRF token. On Lemmy
1.0 a code is a native invite link made with the user's own token; on 0.19 it
is Warden's code, which the applicant pastes into the application answer.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from warden.errors import LemmyRefused, UpstreamError
from warden.membership import invites as rules
from warden.membership.gate import utc_now
from warden.membership.requirements import UserFacts
from warden.services import Services
from warden.store.invites import InviteRefused
from warden.web.deps import ServicesDep

router = APIRouter(prefix="/invites", tags=["invites"], include_in_schema=False)
COOKIE = "warden_invites"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass
class Session:
    token: str  # the Lemmy session token (in memory only)
    csrf: str
    expires: float


class Sessions:
    """In-memory sign-ins; a restart signs everyone out, which is the safe direction."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

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

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), cache_size=10
    )


def _sessions(services: Services) -> Sessions:
    if services.invite_sessions is None:
        services.invite_sessions = Sessions()
    sessions: Sessions = services.invite_sessions
    return sessions


def _enabled(services: Services) -> None:
    if services.invites is None or services.identity is None:
        raise HTTPException(404, "invites are not enabled on this instance")


def _render(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    services: Services = request.app.state.services
    values.setdefault("site", services.settings.lemmy.url)
    values.setdefault("base", "/invites")
    html = _env().get_template("invites.html").render(**values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _back(notice: str = "", error: str = "") -> RedirectResponse:
    query = f"?notice={quote(notice)}" if notice else f"?error={quote(error)}" if error else ""
    return RedirectResponse(f"/invites{query}", status_code=303)


async def _signed_in(request: Request, services: Services) -> tuple[Session, UserFacts] | None:
    session = _sessions(services).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    assert services.identity is not None
    facts = await services.identity.facts(session.token)
    return (session, facts) if facts is not None else None


def _checked(request: Request, services: Services, csrf: str) -> None:
    session = _sessions(services).get(request.cookies.get(COOKIE))
    if session is None or not secrets.compare_digest(session.csrf, csrf):
        raise HTTPException(403, "the form expired; reload the page and try again")


@router.get("", response_class=HTMLResponse)
async def page(
    request: Request, services: ServicesDep, notice: str = "", error: str = ""
) -> HTMLResponse:
    """The sign-in form, or the signed-in user's balance, codes and invitees."""
    _enabled(services)
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
    how_to = (
        f"Share the code as an invite link: {services.settings.lemmy.url}/signup?invite=<code>."
        if native
        else "Give the code to the person you invite; they paste it into the application"
        f" question when they sign up at {services.settings.lemmy.url}."
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


@router.post("/login")
async def login(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    totp: Annotated[str, Form()] = "",
) -> Response:
    """Forward the credentials to Lemmy; keep only the session token it answers."""
    _enabled(services)
    assert services.identity is not None
    try:
        token = await services.identity.lemmy.login(username, password, totp or None)
    except LemmyRefused as exc:
        message = {
            "incorrect_login": "Wrong user name or password.",
            "missing_totp_token": "Enter your two-factor code too.",
            "incorrect_totp_token": "That two-factor code is not right.",
        }.get(exc.lemmy_code, f"Lemmy refused the sign-in ({exc.lemmy_code or 'error'}).")
        return _render(request, 401, error=message)
    except UpstreamError:
        return _render(request, 503, error="The instance cannot be reached; try again soon.")
    settings = services.settings.invites
    sid = _sessions(services).create(token, settings.session_ttl_s)
    response = _back()
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
async def logout(request: Request, services: ServicesDep, csrf: Annotated[str, Form()]) -> Response:
    _enabled(services)
    _checked(request, services, csrf)
    _sessions(services).drop(request.cookies.get(COOKIE))
    response = _back(notice="Signed out.")
    response.delete_cookie(COOKIE, path="/invites")
    return response


@router.post("/create")
async def create(request: Request, services: ServicesDep, csrf: Annotated[str, Form()]) -> Response:
    """Spend one invite; on Lemmy 1.0 the code is a native link made with the user's token."""
    _enabled(services)
    _checked(request, services, csrf)
    signed = await _signed_in(request, services)
    if signed is None:
        return _back(error="Please sign in again.")
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
        return _back(error=exc.message)
    if native:
        try:
            link = await lemmy.create_invite(session.token, invite.max_uses, invite.expires_at)
        except UpstreamError as exc:  # LemmyRefused included
            await asyncio.to_thread(
                store.refund, facts.person_id, invite.code, facts.name, exc.message
            )
            return _back(error=f"Lemmy did not create the invite: {exc.message}")
        await asyncio.to_thread(store.rename_code, invite.code, link.token)
        await asyncio.to_thread(store.record_native, link.token, link.expires_at, link.max_uses)
    return _back(notice="Invite created.")


@router.post("/revoke")
async def revoke(
    request: Request,
    services: ServicesDep,
    csrf: Annotated[str, Form()],
    code: Annotated[str, Form()],
) -> Response:
    """Revoke one of the user's codes; an unused one goes back to the balance."""
    _enabled(services)
    _checked(request, services, csrf)
    signed = await _signed_in(request, services)
    if signed is None:
        return _back(error="Please sign in again.")
    session, facts = signed
    store = services.invites
    assert store is not None and services.identity is not None
    invite = await asyncio.to_thread(store.invite, code)
    if invite is None or invite.inviter_id != facts.person_id:
        return _back(error="There is no such invite of yours.")
    if invite.native:
        try:
            await services.identity.lemmy.revoke_invite(session.token, code)
        except LemmyRefused as exc:
            if exc.lemmy_code != "invalid_invite_token":  # already gone in Lemmy: fine
                return _back(error=f"Lemmy did not revoke the invite: {exc.message}")
        except UpstreamError as exc:
            return _back(error=f"Lemmy did not revoke the invite: {exc.message}")
    try:
        returned = await asyncio.to_thread(
            store.revoke, code, facts.person_id, utc_now(), facts.name
        )
    except InviteRefused as exc:
        return _back(error=exc.message)
    return _back(notice=f"Invite revoked; {returned} returned to your balance.")
