"""`warden evidence`: list, show, export and prune preserved media; make keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from warden.cli.context import settings_from
from warden.services import build_evidence_store
from warden.store.quarantine import EvidenceStore, generate_key

evidence_app = typer.Typer(
    help="The encrypted evidence store (media refused for a label or hash match).",
    no_args_is_help=True,
)


def _store(ctx: typer.Context) -> EvidenceStore:
    """The evidence store, even when preservation is off (its items stay readable)."""
    store = build_evidence_store(settings_from(ctx), force=True)
    assert store is not None  # force=True: built whatever evidence.enabled says
    return store


@evidence_app.command("list")
def list_items(ctx: typer.Context) -> None:
    """One line per item: id, time, source, decision, first reason, SHA-256."""
    for item in _store(ctx).items():
        m = item.metadata
        reasons = m.get("reasons") or [{}]
        typer.echo(
            f"{item.id}\t{item.created_at.isoformat()}\t{m.get('source')}\t"
            f"{m.get('decision')}\t{reasons[0].get('code')}\t{m.get('sha256')}"
        )


@evidence_app.command("show")
def show(ctx: typer.Context, item_id: Annotated[str, typer.Argument(help="Item id.")]) -> None:
    """Print one item's metadata as JSON (never the media)."""
    item = _store(ctx).show(item_id)
    typer.echo(json.dumps(dict(item.metadata), indent=2, sort_keys=True))


@evidence_app.command("export")
def export(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    dest: Annotated[Path, typer.Argument(help="Folder the report package is made in.")],
) -> None:
    """Make a report package for a hotline; prints the one-time media key separately."""
    folder, key = _store(ctx).export(item_id, dest)
    typer.echo(f"report package: {folder}")
    typer.echo("media.bin is encrypted (AES-256-GCM). Give this key separately, not with it:")
    typer.echo(key)


@evidence_app.command("prune")
def prune(ctx: typer.Context) -> None:
    """Delete items older than evidence.retention_days."""
    removed = _store(ctx).prune(datetime.now(UTC))
    typer.echo(f"pruned {len(removed)} item(s)")


@evidence_app.command("keygen")
def keygen() -> None:
    """Print a new key for evidence.key (WARDEN_EVIDENCE__KEY)."""
    typer.echo(generate_key())
