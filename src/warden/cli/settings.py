"""`warden config` and `warden version`: what this Warden is and runs with."""

from __future__ import annotations

import json

import typer

from warden import __version__
from warden.cli.context import settings_from

config_app = typer.Typer(help="Show and check settings.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    settings = settings_from(ctx)
    typer.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))


def version() -> None:
    """Print Warden's version."""
    typer.echo(__version__)
