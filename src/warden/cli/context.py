"""What every `warden` command shares: settings, consoles, who is acting, and the
one place an error becomes a message and an exit status.

Commands raise errors from `warden.errors` and let them go: `WardenGroup`, the
root command group, catches them, prints `error: <message>` on stderr and exits
with the status the error (or the command) calls for. So a new command is
correct by default and no command formats failures of its own.

Exit statuses (docs/errors.md lists each error's):

- 0: done (and, for commands whose status is an answer, the answer is "fine");
- 1: refused, not found, or failed on the way (a store or a service upstream);
  for commands whose status is an answer (scan, rescan, doctor, rules check,
  hashes match), 1 is that answer: refused, found, a problem (and for hashes
  match, which always said 1 on a failure too, also that);
- 2: nothing was done: settings (`ConfigError`) or what was typed (`InputError`,
  a usage error) cannot be used, or a command whose status is an answer could
  not reach one.

A command that needs one status for every failure says so with `on_error`:
scan, rescan, doctor and rules check (2: could not tell), eval and serve (2:
nothing measured or served), the `hashes` group (1, as it always answered).
"""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

from warden.config import Settings, load_settings
from warden.errors import ConfigError, InputError, WardenError
from warden.services.factories import open_database
from warden.store.database import Database

log = logging.getLogger(__name__)

out = Console(highlight=False, soft_wrap=True)
"""Standard output: results (tables, lines a script reads)."""
err = Console(stderr=True, highlight=False, soft_wrap=True)
"""Standard error: errors, warnings, progress bars."""

_EXIT = "warden.exit_code"
_HINT = "warden.hint"


def on_error(ctx: typer.Context, *, exit_code: int | None = None, hint: str = "") -> None:
    """Say what a failure means for this command from here on.

    `exit_code` replaces every error's own status (a command whose exit status is
    its answer uses 2: it could not tell); None keeps each error's own. `hint` is
    added to the message (e.g. "resume with the same command"). Kept in the
    context's shared `meta`, so a group callback sets it for all its commands,
    and a later call replaces an earlier one.
    """
    ctx.meta[_EXIT] = exit_code
    ctx.meta[_HINT] = hint


def fail(ctx: typer.Context, exc: Exception) -> int:
    """Print `exc` on stderr and return the exit status it calls for (see the module).

    A bare `ValueError` is bad input from a layer that does not raise
    `InputError` yet; an `OSError` is a file or folder that cannot be used.
    """
    if isinstance(exc, WardenError):
        code = exc.exit_code
    elif isinstance(exc, ValueError):
        code = InputError.exit_code
    else:
        code = 1
    if ctx.meta.get(_EXIT) is not None:
        code = ctx.meta[_EXIT]
    hint = ctx.meta.get(_HINT, "")
    log.debug("command failed", exc_info=exc)  # the traceback, with --verbose
    err.print(f"[red]error:[/red] {escape(str(exc))}" + (f" ({escape(hint)})" if hint else ""))
    return int(code)


class WardenGroup(TyperGroup):
    """The root command group: runs a command and turns its errors into an exit status."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (WardenError, ValueError, OSError) as exc:
            raise typer.Exit(fail(ctx, exc)) from exc


def settings_from(ctx: typer.Context) -> Settings:
    """The settings for this invocation, read once and kept on the root context."""
    root = ctx.find_root()
    obj = _state(root)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("config_path"))
    settings: Settings = obj["settings"]
    return settings


def config_path(ctx: typer.Context) -> Path | None:
    """The `--config` file given to `warden` (None: $WARDEN_CONFIG or defaults)."""
    path: Path | None = _state(ctx.find_root()).get("config_path")
    return path


def database(ctx: typer.Context, *, lookup: bool = False) -> Database:
    """Warden's database, migrated to the current schema, opened once per invocation.

    `lookup`: a command that only reads banks (`hashes match`) skips the migration
    check (Alembic costs ~0.17 s a start, a sixth of its 1 s budget) on a database
    that was ever migrated; a new one is still created."""
    obj = _state(ctx.find_root())
    if "database" not in obj:
        db = open_database(settings_from(ctx))
        if not (lookup and _migrated(db)):
            db.upgrade()
        obj["database"] = db
    db_: Database = obj["database"]
    return db_


def _migrated(db: Database) -> bool:
    """Whether Alembic ever stamped this database (one query, no Alembic import)."""
    try:
        with db.engine.connect() as conn:
            return (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").first() is not None
            )
    except SQLAlchemyError:
        return False


def bot_token(settings: Settings, why: str = "") -> str:
    """The Lemmy bot account's token, or a ConfigError saying to set it."""
    if settings.lemmy.bot_token is None:
        raise ConfigError(why or "set lemmy.bot_token (an admin account's token) first")
    return settings.lemmy.bot_token.get_secret_value()


def me() -> str:
    """Who runs this command (the OS user), kept as provenance in audit records."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "unknown"


def _state(root: Any) -> dict[str, Any]:
    """The root context's `obj`: `--config`, then the settings and database once made."""
    if not isinstance(root.obj, dict):
        root.obj = {}
    state: dict[str, Any] = root.obj
    return state
