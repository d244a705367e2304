"""The one place a Warden error becomes an HTTP answer.

Any `WardenError` that reaches the app is answered `{"error": code, "message":
text}` with the class's own `status` (errors.py), so routers raise and never
format. Two answers carry a header as well: 401 `unauthorized` says how to
authenticate (`WWW-Authenticate: Bearer`), and 408 `body_timeout` closes the
connection (the rest of a slow body is not worth waiting for).

The answers pict-rs and nginx read have their own fixed shapes and are made by
their routers (web/answers.py, the /authz and /pictrs-proxy routers); the
/invites pages render their refusals as pages (web/routers/invites.py).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from warden.errors import BodyTimeout, Unauthorized, WardenError


def error_answer(exc: WardenError) -> JSONResponse:
    """The JSON answer for one Warden error."""
    response = JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, BodyTimeout):
        response.headers["Connection"] = "close"
    return response


async def warden_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WardenError)
    return error_answer(exc)


def answer_warden_errors(app: FastAPI) -> None:
    """Register the handler (once per app, by the app factory)."""
    app.add_exception_handler(WardenError, warden_error_handler)
