"""The app factory: `create_app(settings, services=None)`.

Nothing is built at import time; `warden serve` and the tests call this with
their own settings, and tests may pass ready-made services. The lifespan
starts the micro-batcher, loads the hash banks (before the first request)
and follows their changes, and, under `warden serve`, reloads settings on SIGHUP.
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
from warden.errors import BodyTimeout
from warden.services import Services, build_services
from warden.web import peers
from warden.web.deadlines import BodyDeadline, body_timeout_handler
from warden.web.routers import api, authz, health, invites, pictrs, pictrs_proxy

log = logging.getLogger(__name__)


def _start_invite_worker(services: Services, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The application/ban/tree worker, when invites are on and a bot token is set."""
    from warden.jobs.invites import InviteWorker

    token = services.settings.lemmy.bot_token
    if services.invites is None or services.identity is None:
        return None
    if token is None:
        log.error("invites.enabled but lemmy.bot_token is not set: no application worker runs")
        return None
    worker = InviteWorker(
        services.invites,
        services.identity.lemmy,
        token.get_secret_value(),
        services.settings.invites,
    )
    return asyncio.create_task(worker.run_forever(stop), name="warden-invites")


def _reload_on_signal(services: Services) -> None:
    try:
        services.reload()
    except Exception:
        log.exception("SIGHUP reload failed; the settings in force are kept")


async def _follow_banks(services: Services, stop: asyncio.Event) -> None:
    """Pick up bank changes every `banks.refresh_s`; rebuild the index off the request
    path when enough changed. A failing database keeps the banks in force. Stops
    between refreshes, never in the middle of one (its thread holds a connection)."""
    sync = services.banks
    assert sync is not None
    while True:
        try:
            await asyncio.wait_for(stop.wait(), services.settings.banks.refresh_s)
            return
        except TimeoutError:
            pass
        try:
            await asyncio.to_thread(sync.refresh)
            if sync.matcher.pending >= services.settings.banks.compact_after:
                await asyncio.to_thread(sync.matcher.compact)
        except Exception:
            log.exception("hash banks could not be refreshed; the loaded banks stay in force")


#: The pages people open in a browser. With `server.public_port` set they are served
#: only by `create_public_app`, on a listener that never exposes the validation hook,
#: the ingest proxy, /authz or the API; nginx proxies `location /invites` there.
PUBLIC_ROUTERS = (invites.router,)


def _guard(app: FastAPI, settings: Settings) -> None:
    """What every listener shares: the request-body deadline (web/deadlines.py)."""
    app.add_middleware(BodyDeadline, timeout_s=settings.server.body_timeout_s)
    app.add_exception_handler(BodyTimeout, body_timeout_handler)


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


def create_app(
    settings: Settings, services: Services | None = None, *, reload_on_sighup: bool = False
) -> FastAPI:
    built = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if built.batcher is not None:
            built.batcher.start()
        await asyncio.to_thread(built.scanner.start)  # decoder processes, warm before requests
        follower = None
        stop = asyncio.Event()
        if built.banks is not None:
            # before the first request: until the banks are loaded nobody is answered
            # (pict-rs then refuses the upload), rather than answered unmatched
            await asyncio.to_thread(built.banks.load)
            follower = asyncio.create_task(_follow_banks(built, stop), name="warden-banks")
        inviter = _start_invite_worker(built, stop)
        loop = asyncio.get_running_loop()
        if reload_on_sighup:
            loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, built)
        try:
            yield
        finally:
            stop.set()
            if follower is not None:
                await follower
            if inviter is not None:
                await inviter
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
    app.add_exception_handler(api.Unauthorized, api.unauthorized_handler)
    _guard(app, settings)
    app.include_router(health.router)
    if settings.server.public_port is None:  # else only on the public listener
        for public in PUBLIC_ROUTERS:
            app.include_router(public)
    app.include_router(pictrs.router)
    app.include_router(api.router)
    app.include_router(authz.router)
    app.include_router(pictrs_proxy.router)
    return app
