"""`warden db` and `warden tokens`: the database schema and API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from warden.cli.context import database, settings_from
from warden.errors import NotFound
from warden.services.factories import open_database, token_store
from warden.store.tokens import DEFAULT_SCOPES, SCOPES, TokenStore

db_app = typer.Typer(help="The database: apply and show migrations.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens for /api/v1 (stored as SHA-256 only).", no_args_is_help=True
)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply every migration not yet applied (what `warden serve` does on start)."""
    db = open_database(settings_from(ctx))
    db.upgrade()
    typer.echo(f"database at revision {db.current_revision()}")


@db_app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the database's migration revision (or 'none')."""
    typer.echo(open_database(settings_from(ctx)).current_revision() or "none")


def _tokens(ctx: typer.Context) -> TokenStore:
    return token_store(database(ctx))


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who uses it.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="What it may do: scan (/api/v1/scan), admin (/api/v1/admin/*). Repeatable;"
            " default scan only.",
        ),
    ] = None,
) -> None:
    """Create a token and print it once (only its hash is kept).

    Least privilege: a token only scans unless `--scope admin` is given."""
    token, plaintext = _tokens(ctx).create(name, scope or DEFAULT_SCOPES)
    scopes = ",".join(s for s in SCOPES if s in token.scopes)
    typer.echo(f"token {token.id} ({token.name}, scopes {scopes}); shown once, keep it:")
    typer.echo(plaintext)


@tokens_app.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """One line per token: id, name, scopes, created, last used, revoked."""
    for t in _tokens(ctx).list():
        scopes = ",".join(s for s in SCOPES if s in t.scopes) or "-"
        typer.echo(
            f"{t.id}\t{t.name}\t{scopes}\t{t.created_at:%Y-%m-%d %H:%M}\t"
            f"{t.last_used_at.isoformat() if t.last_used_at else '-'}\t"
            f"{'revoked' if t.revoked_at else 'active'}"
        )


@tokens_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="Token id.")]) -> None:
    """Revoke a token; requests bearing it get 401 from then on."""
    if not _tokens(ctx).revoke(token_id):
        raise NotFound(f"no token {token_id}")
    typer.echo(f"token {token_id} revoked")
