"""One HTTP error handler (issue 14): any Warden error that reaches the app is
`{"error": code, "message": text}` with the status its class carries."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from warden import errors
from warden.web.errors import answer_warden_errors

CASES = [
    (errors.NotFound("no such thing"), 404, "not_found"),
    (errors.InviteRefused("none left", code="no_invites_left"), 403, "no_invites_left"),
    (errors.RuleFileError("rules.toml", 3, "bad"), 422, "bad_rules"),
    (errors.HashFileError("line 2: not hex"), 400, "bad_hash_file"),
    (errors.Forbidden("admin"), 403, "forbidden"),
    (errors.LemmyUnavailable("down"), 503, "lemmy_unavailable"),
    (errors.MediaTooLarge("too big"), 413, "file_too_large"),
]


def _app(exc: Exception) -> FastAPI:
    app = FastAPI()
    answer_warden_errors(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


@pytest.mark.parametrize(("exc", "status", "code"), CASES)
async def test_a_warden_error_answers_its_code_and_status(
    exc: errors.WardenError, status: int, code: str
) -> None:
    transport = httpx.ASGITransport(app=_app(exc))
    async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
        answer = await client.get("/boom")
    assert answer.status_code == status
    assert answer.json() == {"error": code, "message": exc.message}


async def test_unauthorized_says_how_and_a_slow_body_closes_the_connection() -> None:
    for exc, header, value in (
        (errors.Unauthorized(), "www-authenticate", "Bearer"),
        (errors.BodyTimeout("slow"), "connection", "close"),
    ):
        transport = httpx.ASGITransport(app=_app(exc))
        async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
            answer = await client.get("/boom")
        assert answer.status_code == exc.status
        assert answer.headers[header] == value


def test_the_page_and_token_refusals_are_auth_errors() -> None:
    """They joined the family: one handler (or the page renderer) answers them all."""
    assert issubclass(errors.Unauthorized, errors.AuthError)
    assert issubclass(errors.Forbidden, errors.AuthError)
    refused = errors.PageRefused(400, "The form could not be read.")
    assert isinstance(refused, errors.AuthError) and refused.status == 400
