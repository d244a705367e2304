"""The app factory: `create_app(settings, services=None)`.

Nothing is built at import time; `warden serve` and the tests call this with
their own settings, and tests may pass ready-made services. The lifespan only
starts and closes the services (`Services.start` / `aclose`: batcher, decoder
processes, hash banks and their follower, invite worker) and, under `warden
serve`, reloads settings on SIGHUP. Every app answers Warden errors with the
one handler of web/errors.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from warden import __version__
from warden.config import Settings
from warden.services import Services, build_services
from warden.web import console, peers
from warden.web.deadlines import BodyDeadline
from warden.web.errors import answer_warden_errors
from warden.web.routers import api, authz, health, invites, pictrs, pictrs_proxy, scanner_media
from warden.web.routers import feeds as feed_routes

log = logging.getLogger(__name__)


def _reload_on_signal(services: Services) -> None:
    try:
        services.reload()
    except Exception:
        log.exception("SIGHUP reload failed; the settings in force are kept")


#: What people and other instances reach from the internet: the /invites pages and the
#: hash feeds (signed, rate-limited: other Wardens pull /feeds/v1/ and the well-known
#: key, and push to the inbox). With `server.public_port` set they are served only by
#: `create_public_app`, on a listener that never exposes the validation hook, the
#: ingest proxy, /authz, the console or the API; nginx proxies those paths there.
PUBLIC_ROUTERS = (invites.router, feed_routes.router)


def _guard(app: FastAPI, settings: Settings) -> None:
    """What every listener shares: the request-body deadline (web/deadlines.py) and
    the one Warden-error handler (web/errors.py)."""
    app.add_middleware(BodyDeadline, timeout_s=settings.server.body_timeout_s)
    answer_warden_errors(app)


def create_public_app(settings: Settings, services: Services) -> FastAPI:
    """The public listener's app: the public pages and nothing else, no API docs.

    It shares the main app's services and has no lifespan of its own: `warden
    serve` runs it beside `create_app`'s app, whose lifespan starts and stops them."""
    app = FastAPI(
        title="Warden (public pages)",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    setattr(app.state, peers.TRUST_SETTING, "public_trusted_proxies")
    _guard(app, settings)
    for public in PUBLIC_ROUTERS:
        app.include_router(public)
    return app


def _routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(health.router)
    if settings.server.public_port is None:  # else only on the public listener
        for public in PUBLIC_ROUTERS:
            app.include_router(public)
    app.include_router(pictrs.router)
    app.include_router(api.router)
    app.include_router(authz.router)
    app.include_router(pictrs_proxy.router)
    app.include_router(console.router)  # main (internal) listener only, never public
    app.include_router(scanner_media.router)  # one-time media URLs for external scanners


def route_app(settings: Settings) -> FastAPI:
    """The main app's routes with no services behind them, for reading the route
    table (the generated docs/http.md); it cannot answer requests."""
    app = FastAPI(title="Warden", version=__version__)
    _routes(app, settings)
    return app


def create_app(
    settings: Settings, services: Services | None = None, *, reload_on_sighup: bool = False
) -> FastAPI:
    built = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        await built.start()
        if reload_on_sighup:
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, built)
        try:
            yield
        finally:
            if reload_on_sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            await built.aclose()

    app = FastAPI(
        title="Warden",
        version=__version__,
        description="The safety layer beside Lemmy and pict-rs.",
        lifespan=lifespan,
    )
    app.state.services = built
    _guard(app, settings)
    _routes(app, settings)
    return app
