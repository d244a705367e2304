"""Typed FastAPI dependencies shared by the routers: the services, and scoped API tokens.

`/api/v1` callers authenticate with `Authorization: Bearer <token>`; each route
names the scope it needs (`ScanTokenDep`, `AdminTokenDep`). A missing, unknown
or revoked token is `Unauthorized` (401); a good token without the scope is
`Forbidden` (403), so a scanning bot's token can never reload the configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from warden.services import Services
from warden.store.tokens import ApiToken


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class Unauthorized(Exception):
    """No usable token; answered 401 `unauthorized` by the app's handler."""

    status = 401
    code = "unauthorized"
    message = "a valid API token is required (Authorization: Bearer …)"


class Forbidden(Unauthorized):
    """A valid token without the scope the route needs; answered 403 `forbidden`."""

    status = 403
    code = "forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.message = (
            f"this token lacks the '{scope}' scope; make one with "
            f"`warden tokens create NAME --scope {scope}`"
        )


async def require_token(request: Request, services: ServicesDep) -> ApiToken:
    """The caller's token when it is known and not revoked (any scope)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip() or services.tokens is None:
        raise Unauthorized
    token = await asyncio.to_thread(services.tokens.verify, value.strip())
    if token is None:
        raise Unauthorized
    return token


def scoped(scope: str) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency that answers the token only when it carries `scope`."""

    async def dependency(token: Annotated[ApiToken, Depends(require_token)]) -> ApiToken:
        if not token.allows(scope):
            raise Forbidden(scope)
        return token

    return dependency


ScanTokenDep = Annotated[ApiToken, Depends(scoped("scan"))]
AdminTokenDep = Annotated[ApiToken, Depends(scoped("admin"))]
