"""The `warden` command line: a thin Typer layer over the services.

This module only names the commands and the module each lives in (one module per
command or group under `warden.cli`); `cli/context.py` holds what they share,
including the one error handler (`WardenGroup`). Each command builds what it needs
through `warden.services` and prints; no command holds logic another entry point
needs.

Commands load lazily (issue 16): importing every command module (the console, the
Lemmy adapters, cryptography, the engine, ...) cost ~0.8 s at each start, more than
`warden hashes match` itself at 10 M entries. `LazyGroup` imports a command's
module when that command runs (or when help or the docs list them all), so a
command pays only for its own imports, and names, options, help and order stay
what an eagerly assembled app gives (tests/cli/test_hashes_cli.py compares them).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click as click  # Typer 0.29 builds on its own copy of click

from warden.cli.context import WardenGroup

# name -> (module, attribute: a Typer group or a command function), in the order
# `warden --help` lists them (Typer's: single commands first, then groups).
COMMANDS: dict[str, tuple[str, str]] = {
    "rescan": ("warden.cli.rescan", "rescan"),
    "eval": ("warden.cli.eval", "evaluate"),
    "doctor": ("warden.cli.doctor", "doctor"),
    "flag": ("warden.cli.flag", "flag"),
    "unflag": ("warden.cli.flag", "unflag"),
    "version": ("warden.cli.settings", "version"),
    "scan": ("warden.cli.scan", "scan"),
    "serve": ("warden.cli.serve", "serve"),
    "config": ("warden.cli.settings", "config_app"),
    "rules": ("warden.cli.rules", "rules_app"),
    "evidence": ("warden.cli.evidence", "evidence_app"),
    "db": ("warden.cli.service", "db_app"),
    "tokens": ("warden.cli.service", "tokens_app"),
    "purge": ("warden.cli.purge", "purge_app"),
    "hashes": ("warden.cli.banks", "hashes_app"),
    "invites": ("warden.cli.invites", "invites_app"),
    "docs": ("warden.cli.docs", "docs_app"),
    "feeds": ("warden.cli.feeds", "feeds_app"),
    "decisions": ("warden.cli.decisions", "decisions_app"),
}

# the root app's Typer settings, which the lazily built commands must share
_SETTINGS: dict[str, Any] = {"pretty_exceptions_enable": False, "add_completion": False}


def register(shell: typer.Typer, name: str, target: Any) -> None:
    """Put one command or group on a Typer app, as the eager `add_typer`/`command` did."""
    if isinstance(target, typer.Typer):
        shell.add_typer(target, name=name)
    else:
        shell.command(name)(target)


class LazyGroup(WardenGroup):
    """The `warden` group, loading each command's module on first use (click's
    "LazyGroup" pattern). `commands` (read by docs and by Typer's typo hints) loads
    them all, so whatever walks the tree sees the whole app."""

    def __init__(self, **attrs: Any) -> None:
        self._loaded: dict[str, click.Command] = {}
        super().__init__(**attrs)

    @property
    def commands(self) -> MutableMapping[str, click.Command]:
        for name in COMMANDS:
            self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        self._loaded.update(value)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            self._load(cmd_name)
        return self._loaded.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*COMMANDS, *self._loaded]))

    def _load(self, name: str) -> None:
        if name in self._loaded:
            return
        module, attribute = COMMANDS[name]
        shell = typer.Typer(**_SETTINGS)  # Typer builds the click command, as for `app`
        register(shell, name, getattr(importlib.import_module(module), attribute))
        shell.callback()(_noop)  # a group even for one command: get_group names it
        self._loaded[name] = typer.main.get_group(shell).commands[name]


def _noop() -> None:
    """Placeholder callback of the throwaway app a lazy command is built in."""


app = typer.Typer(
    name="warden",
    cls=LazyGroup,
    help="Warden: the safety layer beside Lemmy and pict-rs.",
    no_args_is_help=True,
    **_SETTINGS,
)

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
