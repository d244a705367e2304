"""The `warden` command line: a thin Typer layer over the services.

This module only assembles the app from the sub-apps (one module per command
or group under `warden.cli`); `cli/context.py` holds what they share, including
the one error handler (`WardenGroup`). Each command builds what it needs through
`warden.services` and prints; no command holds logic another entry point needs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from warden.cli.banks import hashes_app
from warden.cli.context import WardenGroup
from warden.cli.decisions import decisions_app
from warden.cli.docs import docs_app
from warden.cli.doctor import doctor
from warden.cli.eval import evaluate
from warden.cli.evidence import evidence_app
from warden.cli.feeds import feeds_app
from warden.cli.flag import flag, unflag
from warden.cli.invites import invites_app
from warden.cli.purge import purge_app
from warden.cli.rescan import rescan
from warden.cli.rules import rules_app
from warden.cli.scan import scan
from warden.cli.serve import serve
from warden.cli.service import db_app, tokens_app
from warden.cli.settings import config_app, version

app = typer.Typer(
    name="warden",
    cls=WardenGroup,
    help="Warden: the safety layer beside Lemmy and pict-rs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(rules_app, name="rules")
app.add_typer(evidence_app, name="evidence")
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")
app.add_typer(purge_app, name="purge")
app.command("rescan")(rescan)
app.command("eval")(evaluate)
app.add_typer(hashes_app, name="hashes")
app.command("doctor")(doctor)
app.command("flag")(flag)
app.command("unflag")(unflag)
app.add_typer(invites_app, name="invites")
app.command("version")(version)
app.command("scan")(scan)
app.command("serve")(serve)
app.add_typer(docs_app, name="docs")
app.add_typer(feeds_app, name="feeds")
app.add_typer(decisions_app, name="decisions")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML settings file (default: $WARDEN_CONFIG).", envvar=None
    ),
]


@app.callback()
def _root(
    ctx: typer.Context,
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug output.")] = False,
) -> None:
    """Warden: the safety layer beside Lemmy and pict-rs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = {"config_path": config}


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
