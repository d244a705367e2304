"""Typed FastAPI dependencies: the services a route needs, and scoped API tokens.

A route names what it uses (`GateDep`, `SettingsDep`, `InvitesDep`, …) instead
of taking every service and asserting on the optional ones. A feature that is
switched off answers for itself: `InvitesDep` raises 404 `not_found` when
invites are off (the /invites pages render that as a page).

`/api/v1` callers authenticate with `Authorization: Bearer <token>`; each route
names the scope it needs (`ScanTokenDep`, `AdminTokenDep`). A missing, unknown
or revoked token is `Unauthorized` (401); a good token without the scope is
`Forbidden` (403), so a scanning bot's token can never reload the configuration.
Both are Warden errors, answered by the app's one handler (web/errors.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from warden.config import Settings
from warden.errors import Forbidden, NotFound, Unauthorized
from warden.services import Services
from warden.services.gate import MediaGate
from warden.services.invites import InvitesFeature
from warden.store.tokens import ApiToken, TokenStore


async def get_services(request: Request) -> Services:
    """Async although it awaits nothing: FastAPI runs a plain `def` dependency in its
    thread pool, a thread hop for every request (every bomb in a storm included); the
    other look-ups here are async for the same reason."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    """The settings in force (a reload swaps them; read them per request)."""
    return services.settings


async def get_gate(services: ServicesDep) -> MediaGate:
    return services.gate


async def get_tokens(services: ServicesDep) -> TokenStore:
    return services.tokens


async def get_invites(services: ServicesDep) -> InvitesFeature:
    """The invite feature, or 404 `not_found` when invites are off."""
    if services.invites is None:
        raise NotFound("Invites are not enabled on this instance.")
    return services.invites


SettingsDep = Annotated[Settings, Depends(get_settings)]
GateDep = Annotated[MediaGate, Depends(get_gate)]
TokensDep = Annotated[TokenStore, Depends(get_tokens)]
InvitesDep = Annotated[InvitesFeature, Depends(get_invites)]


async def require_token(request: Request, tokens: TokensDep) -> ApiToken:
    """The caller's token when it is known and not revoked (any scope)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized
    token = await asyncio.to_thread(tokens.verify, value.strip())
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
