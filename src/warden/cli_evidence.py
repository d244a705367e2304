"""`warden evidence`: list, show, export and prune preserved media; make keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from warden.errors import WardenError
from warden.store.quarantine import EvidenceStore, generate_key

evidence_app = typer.Typer(
    help="The encrypted evidence store (media refused for a label or hash match).",
    no_args_is_help=True,
)


def _store(ctx: typer.Context) -> EvidenceStore:
    from warden.cli import err, settings_from
    from warden.services import build_evidence_store

    settings = settings_from(ctx)
    try:
        store = build_evidence_store(settings, force=True)
    except WardenError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    assert store is not None
    return store


def _fail(exc: WardenError) -> typer.Exit:
    from warden.cli import err

    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@evidence_app.command("list")
def list_items(ctx: typer.Context) -> None:
    """One line per item: id, time, source, decision, first reason, SHA-256."""
    try:
        for item in _store(ctx).items():
            m = item.metadata
            reasons = m.get("reasons") or [{}]
            typer.echo(
                f"{item.id}\t{item.created_at.isoformat()}\t{m.get('source')}\t"
                f"{m.get('decision')}\t{reasons[0].get('code')}\t{m.get('sha256')}"
            )
    except WardenError as exc:
        raise _fail(exc) from exc


@evidence_app.command("show")
def show(ctx: typer.Context, item_id: Annotated[str, typer.Argument(help="Item id.")]) -> None:
    """Print one item's metadata as JSON (never the media)."""
    try:
        item = _store(ctx).show(item_id)
    except WardenError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(dict(item.metadata), indent=2, sort_keys=True))


@evidence_app.command("export")
def export(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    dest: Annotated[Path, typer.Argument(help="Folder the report package is made in.")],
) -> None:
    """Make a report package for a hotline; prints the one-time media key separately."""
    try:
        folder, key = _store(ctx).export(item_id, dest)
    except (WardenError, FileExistsError) as exc:
        raise _fail(exc if isinstance(exc, WardenError) else WardenError(str(exc))) from exc
    typer.echo(f"report package: {folder}")
    typer.echo("media.bin is encrypted (AES-256-GCM). Give this key separately, not with it:")
    typer.echo(key)


@evidence_app.command("prune")
def prune(ctx: typer.Context) -> None:
    """Delete items older than evidence.retention_days."""
    try:
        removed = _store(ctx).prune(datetime.now(UTC))
    except WardenError as exc:
        raise _fail(exc) from exc
    typer.echo(f"pruned {len(removed)} item(s)")


@evidence_app.command("keygen")
def keygen() -> None:
    """Print a new key for evidence.key (WARDEN_EVIDENCE__KEY)."""
    typer.echo(generate_key())
