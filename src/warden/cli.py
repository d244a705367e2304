"""The `warden` command line: a thin Typer layer over the services.

Each command builds what it needs from the settings (via `warden.services`)
and prints; no command holds logic another entry point would need.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from warden import __version__
from warden.cli_doctor import doctor as doctor_command
from warden.cli_eval import evaluate as eval_command
from warden.cli_evidence import evidence_app
from warden.cli_hashes import flag as flag_command
from warden.cli_hashes import hashes_app
from warden.cli_hashes import unflag as unflag_command
from warden.cli_invites import invites_app
from warden.cli_purge import purge_app
from warden.cli_rescan import rescan as rescan_command
from warden.cli_rules import rules_app
from warden.cli_service import db_app, tokens_app
from warden.config import Settings, load_settings
from warden.errors import ConfigError, WardenError

app = typer.Typer(
    name="warden",
    help="Warden: the safety layer beside Lemmy and pict-rs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show and check settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(rules_app, name="rules")
app.add_typer(evidence_app, name="evidence")
app.add_typer(db_app, name="db")
app.add_typer(tokens_app, name="tokens")
app.add_typer(purge_app, name="purge")
app.command("rescan")(rescan_command)
app.command("eval")(eval_command)
app.add_typer(hashes_app, name="hashes")
app.command("doctor")(doctor_command)
app.command("flag")(flag_command)
app.command("unflag")(unflag_command)
app.add_typer(invites_app, name="invites")

err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML settings file (default: $WARDEN_CONFIG).", envvar=None
    ),
]


def settings_from(ctx: typer.Context) -> Settings:
    """The settings for this invocation, read once and cached on the context."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config_path"))
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        root.obj = obj
    settings: Settings = obj["settings"]
    return settings


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


@app.command()
def version() -> None:
    """Print Warden's version."""
    typer.echo(__version__)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    settings = settings_from(ctx)
    typer.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))


@app.command()
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
    from warden.jobs.scan import run_scan

    settings = settings_from(ctx)
    code = run_scan(settings, paths, as_json=as_json, recursive=recursive, workers=workers)
    raise typer.Exit(code)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: server.port).")] = None,
) -> None:
    """Run the HTTP service: pict-rs validation, the scan API, health and metrics.

    Beyond loopback it starts only when the hook and the proxy are protected
    (web/exposure.py); files it creates are private to its user (umask 077)."""
    import os

    from warden.services import build_services
    from warden.web.app import create_app, create_public_app
    from warden.web.exposure import exposure_problems, trust_problems
    from warden.web.listeners import Listener, serve_listeners

    settings = settings_from(ctx)
    logging.getLogger().setLevel(logging.INFO)
    address = host or settings.server.host
    problems = trust_problems(settings) + exposure_problems(settings, address)
    if problems:
        for problem in problems:
            err.print(f"[red]error:[/red] warden serve refused to start: {problem}")
        raise typer.Exit(2)
    os.umask(0o077)  # the database, its WAL, evidence and keys: this user's only
    try:
        services = build_services(settings, config_path=ctx.find_root().obj.get("config_path"))
        assert services.database is not None
        services.database.upgrade()
    except WardenError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    app = create_app(settings, services, reload_on_sighup=True)
    listeners = [Listener(app, address, port or settings.server.port, lifespan="on")]
    server = settings.server
    if server.public_port is not None:
        public = create_public_app(settings, services)
        listeners.append(Listener(public, server.public_host, server.public_port, lifespan="off"))
    serve_listeners(settings, listeners)


docs_app = typer.Typer(
    help="Reference documentation generated from the code.", no_args_is_help=True
)
app.add_typer(docs_app, name="docs")


@docs_app.command("write")
def docs_write(
    folder: Annotated[Path, typer.Option(help="Where the pages go.")] = Path("docs"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when a page is stale.")
    ] = False,
) -> None:
    """Write docs/configuration.md, cli.md and http.md from the settings, CLI and routes."""
    from warden.docs import pages

    stale = []
    for name, text in pages().items():
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
