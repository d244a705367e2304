"""Console sign-in and sign-out, with a Lemmy account.

The credentials go to Lemmy's login API with the client's address (as on
/invites); the token Lemmy answers is used once, to learn who signed in, and
then dropped: the console acts with `lemmy.bot_token`. Failed sign-ins are
counted per account and per address and refused before Lemmy is asked once
there are too many (`services.throttle`, the /invites limits).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from warden.errors import LemmyRateLimited, LemmyRefused, PageRefused, UpstreamError
from warden.web import peers
from warden.web.console.pages import (
    COOKIE,
    ConsoleDep,
    ConsoleRoute,
    ViewerDep,
    checked,
    message,
    render,
)
from warden.web.deps import ServicesDep
from warden.web.public_page import same_site

router = APIRouter(route_class=ConsoleRoute)
_FAILURES = frozenset({"incorrect_login", "incorrect_totp_token"})


@router.get("")
async def index(request: Request, console: ConsoleDep) -> Response:
    """The console's front door: Now for admins, the queue for moderators."""
    session = await console.service.session(request.cookies.get(COOKIE))
    if session is None:
        return RedirectResponse("/console/login", status_code=303)
    return RedirectResponse("/console/now" if session.admin else "/console/queue", 303)


@router.get("/login")
async def login_page(request: Request, console: ConsoleDep) -> Response:
    """The sign-in form (an admin's Lemmy account; a moderator's when allowed)."""
    return render(
        request,
        "login.html",
        moderators=console.service.settings.console.moderators,
        **message(request, console),
    )


@router.post("/login")
async def login(
    request: Request,
    services: ServicesDep,
    console: ConsoleDep,
    username: Annotated[str, Form(max_length=255)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Lemmy checks the password; Warden checks the role and keeps a session row."""
    same_site(request)
    if not username.strip() or not password:
        raise PageRefused(400, "Enter your user name and password.")
    address = peers.client_address(request)
    where = str(address) if address is not None else "unknown"
    throttle = console.service.throttle
    refusal = throttle.check(username, where)
    if refusal is not None:
        response = render(request, "login.html", 429, error="Too many failed sign-ins; try later.")
        response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response
    try:
        token = await services.identity.lemmy.login(
            username, password, totp or None, client_ip=None if address is None else where
        )
        facts = await services.identity.facts(token, client_ip=None if address is None else where)
    except LemmyRefused as exc:
        if exc.lemmy_code in _FAILURES:
            throttle.failed(username, where)
        return render(request, "login.html", 401, error="Wrong user name, password or code.")
    except LemmyRateLimited:
        return render(request, "login.html", 429, error="Lemmy is limiting sign-ins; try later.")
    except UpstreamError:
        return render(request, "login.html", 503, error="Lemmy cannot be reached; try again soon.")
    if facts is None:
        return render(request, "login.html", 401, error="Lemmy did not accept the sign-in.")
    throttle.succeeded(username)
    sid, session = await console.service.sign_in(facts)
    signed = RedirectResponse("/console/now" if session.admin else "/console/queue", 303)
    signed.set_cookie(
        COOKIE,
        sid,
        max_age=int(console.service.settings.console.session_ttl_s),
        httponly=True,
        secure=console.service.settings.console.cookie_secure,
        samesite="strict",
        path="/console",
    )
    return signed


@router.post("/logout")
async def logout(
    request: Request, console: ConsoleDep, who: ViewerDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    checked(request, who, csrf)
    await console.service.sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response
