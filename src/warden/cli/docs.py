"""`warden docs write`: the reference pages in docs/, generated from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from warden.cli.context import err

docs_app = typer.Typer(
    help="Reference documentation generated from the code.", no_args_is_help=True
)


@docs_app.command("write")
def docs_write(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Option(help="Where the pages go.")] = Path("docs"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when a page is stale.")
    ] = False,
) -> None:
    """Write docs/configuration.md, cli.md, http.md and errors.md from the settings, CLI, routes and errors."""
    # warden.docs renders the HTTP routes, so it loads the web stack (FastAPI,
    # Starlette, Jinja), a third of every `warden` start: only this command needs it.
    from warden.docs import pages

    cli = ctx.find_root().command
    assert isinstance(cli, TyperGroup)  # the `warden` app
    stale = []
    for name, text in pages(cli).items():
        path = folder / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if check and stale:
        err.print(f"stale: {', '.join(stale)}; run `warden docs write`")
        raise typer.Exit(1)
    typer.echo(f"{len(stale)} page(s) {'stale' if check else 'written'} in {folder}")
