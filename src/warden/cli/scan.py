"""`warden scan`: files and folders through the same scanner as the media gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from warden.cli.context import on_error, settings_from
from warden.jobs.scan import run_scan


def scan(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to scan.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file per line.")
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Files decoded in parallel.")
    ] = 2,
) -> None:
    """Scan image files and folders; exit 0 if all accepted, 1 if any refused or for review, 2 if any unreadable."""
    on_error(ctx, exit_code=2)  # 1 means "refused": a failure is "could not tell"
    settings = settings_from(ctx)
    code = run_scan(settings, paths, as_json=as_json, recursive=recursive, workers=workers)
    raise typer.Exit(code)
