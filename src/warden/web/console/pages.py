"""What every /console page shares: rendering, the session, CSRF, headers, refusals.

- Pages are server-rendered Jinja templates; the CSP allows no script at all
  (`default-src 'none'`), styles and images only from Warden itself
  (`style-src 'self'; img-src 'self'`), forms only to Warden, and no framing.
- The session cookie (`warden_console`, path /console) is HttpOnly,
  SameSite=Strict and Secure unless `console.cookie_secure` is off.
- Every POST must come from the console itself (`Origin`, else `Referer`,
  naming this host: `public_page.same_site`) AND carry the session's CSRF
  token; either failing is a 403 page, never an action.
- A page that needs a session and has none (expired, signed out, unknown)
  sends the browser to the sign-in form (303), and a POST without one is a
  403: an expired session never acts.
- Refusals (`WardenError`) are rendered as the page with the message under the
  error's own status, never as JSON or a 500.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from warden.errors import NotFound, PageRefused, SignInNeeded, WardenError
from warden.services import Services
from warden.services.console import ConsoleFeature
from warden.store.console import ConsoleSession
from warden.web.console.chart import register as register_chart
from warden.web.public_page import same_site, security_headers

COOKIE = "warden_console"
HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)
register_chart(_ENV)


def headers(response: Response) -> Response:
    """The console's CSP, then every header the public pages carry."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    return security_headers(response)


def render(request: Request, template: str, status: int = 200, /, **values: Any) -> HTMLResponse:
    values.setdefault("who", getattr(request.state, "console_session", None))
    values.setdefault("path", request.url.path)
    html = _ENV.get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status)
    headers(response)
    return response


class ConsoleRoute(APIRoute):
    """Every /console route: refusals become pages, no session means sign in, and
    every answer carries the headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                if request.method == "GET":
                    response = RedirectResponse("/console/login", status_code=303)
                else:
                    response = render(
                        request,
                        "login.html",
                        403,
                        error="Your console session has expired; sign in again.",
                    )
            except WardenError as exc:
                response = render(request, "refused.html", exc.status, error=exc.message)
            except RequestValidationError:
                response = render(
                    request, "refused.html", 400, error="The form could not be read; reload it."
                )
            return headers(response)

        return guarded


def get_console(request: Request) -> ConsoleFeature:
    services: Services = request.app.state.services
    if services.console is None:
        raise NotFound("The console is not enabled (console.enabled).")
    return services.console


ConsoleDep = Annotated[ConsoleFeature, Depends(get_console)]


async def viewer(request: Request, console: ConsoleDep) -> ConsoleSession:
    """The signed-in admin or moderator, or SignInNeeded."""
    session = await console.service.session(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded("Sign in to the console.")
    request.state.console_session = session
    return session


async def admin(who: Annotated[ConsoleSession, Depends(viewer)]) -> ConsoleSession:
    if not who.admin:
        raise PageRefused(403, "This page is for admins; moderators have the review queue.")
    return who


ViewerDep = Annotated[ConsoleSession, Depends(viewer)]
AdminDep = Annotated[ConsoleSession, Depends(admin)]


def checked(request: Request, who: ConsoleSession, csrf: str) -> None:
    """Refuse a POST from another site or without this session's CSRF token."""
    same_site(request)
    if not hmac.compare_digest(who.csrf.encode(), csrf.encode("utf-8", "replace")):
        raise PageRefused(403, "The form expired; reload the page and try again.")


def _sig(console: ConsoleFeature, text: str) -> str:
    return hmac.new(console.sign, text.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def back(console: ConsoleFeature, where: str, notice: str = "", error: str = "") -> Response:
    """Back to a page with a message only Warden can sign (no one else's link can put
    words on a console page)."""
    text = f"{notice}\0{error}"
    query = f"notice={quote(notice)}&error={quote(error)}&sig={_sig(console, text)}"
    return RedirectResponse(f"{where}?{query}", status_code=303)


def message(request: Request, console: ConsoleFeature) -> dict[str, str]:
    """The page's signed notice/error, or nothing."""
    q = request.query_params
    notice, error = q.get("notice", ""), q.get("error", "")
    signature = q.get("sig", "").encode("utf-8", "replace")
    if not hmac.compare_digest(_sig(console, f"{notice}\0{error}").encode(), signature):
        return {}
    return {"notice": notice, "error": error}
