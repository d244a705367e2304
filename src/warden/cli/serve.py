"""`warden serve`: the HTTP service (media gate, ingest proxy, edge checks, API)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from warden.cli.context import config_path, err, on_error, settings_from
from warden.services import build_services
from warden.services.exposure import listening_problems


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: server.port).")] = None,
) -> None:
    """Run the HTTP service: pict-rs validation, the scan API, health and metrics.

    Beyond loopback it starts only when the hook and the proxy are protected
    (services/exposure.py); files it creates are private to its user (umask 077)."""
    # The web stack (FastAPI, Starlette, uvicorn, Jinja) adds about a third to the
    # start of every `warden` command; only this command needs it, so it loads here.
    from warden.web.app import create_app, create_public_app
    from warden.web.listeners import Listener, serve_listeners

    on_error(ctx, exit_code=2)  # whatever stops it from starting: nothing is served
    settings = settings_from(ctx)
    logging.getLogger().setLevel(logging.INFO)
    address = host or settings.server.host
    problems = listening_problems(settings, address)
    if problems:
        for problem in problems:
            err.print(f"[red]error:[/red] warden serve refused to start: {problem}")
        raise typer.Exit(2)
    os.umask(0o077)  # the database, its WAL, evidence and keys: this user's only
    services = build_services(settings, config_path=config_path(ctx))
    services.database.upgrade()
    app = create_app(settings, services, reload_on_sighup=True)
    listeners = [Listener(app, address, port or settings.server.port, lifespan="on")]
    server = settings.server
    if server.public_port is not None:
        public = create_public_app(settings, services)
        listeners.append(Listener(public, server.public_host, server.public_port, lifespan="off"))
    serve_listeners(settings, listeners)
