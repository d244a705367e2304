"""The app factory: `create_app(settings, services=None)`.

Nothing is built at import time; `warden serve` and the tests call this with
their own settings, and tests may pass ready-made services.
"""

from __future__ import annotations

from fastapi import FastAPI

from warden import __version__
from warden.config import Settings
from warden.services import Services, build_services
from warden.web.routers import authz, health, pictrs


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    app = FastAPI(
        title="Warden",
        version=__version__,
        description="The safety layer beside Lemmy and pict-rs.",
    )
    app.state.services = services or build_services(settings)
    app.include_router(health.router)
    app.include_router(pictrs.router)
    app.include_router(authz.router)
    return app
