"""`warden doctor`: check the deployment against Warden's settings, with a fix per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from warden.cli.context import on_error, settings_from
from warden.jobs.doctor import OK, PROBLEM, diagnose

wide = Console(width=160)
"""The findings table: 160 columns even when piped, so fixes stay on few lines."""


def doctor(
    ctx: typer.Context,
    pictrs_config: Annotated[
        Path | None,
        typer.Option(help="pict-rs.toml (PICTRS__* variables in the environment count too)."),
    ] = None,
    nginx: Annotated[
        str | None, typer.Option(help="The instance's public URL, to probe nginx's auth_request.")
    ] = None,
    no_lemmy: Annotated[bool, typer.Option("--no-lemmy", help="Skip Lemmy's API.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list.")] = False,
) -> None:
    """Check pict-rs, Lemmy, nginx and Warden's own settings; exit 1 on any problem."""
    on_error(ctx, exit_code=2)  # 1 means "a problem was found": a failure is "could not tell"
    if pictrs_config is not None and not pictrs_config.is_file():
        raise typer.BadParameter(f"{pictrs_config} is not a file", param_hint="--pictrs-config")
    findings = diagnose(
        settings_from(ctx), pictrs_file=pictrs_config, nginx_url=nginx, lemmy=not no_lemmy
    )
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        table = Table("check", "", "what Warden sees", "fix", show_lines=True)
        marks = {OK: "[green]ok[/green]", PROBLEM: "[red]problem[/red]"}
        for f in findings:
            table.add_row(f.check, marks.get(f.status, "[yellow]info[/yellow]"), f.detail, f.fix)
        wide.print(table)
    if any(f.status == PROBLEM for f in findings):
        raise typer.Exit(1)
