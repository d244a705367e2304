"""`warden rescan`: scan media pict-rs already stores (folder or S3), resumably."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from warden.config import Settings
    from warden.store.rescan_ledger import RescanLedger

err = Console(stderr=True)


def rescan(
    ctx: typer.Context,
    folder: Annotated[
        Path | None, typer.Option(help="A pict-rs filesystem store (its files folder).")
    ] = None,
    s3_bucket: Annotated[
        str | None, typer.Option(help="An S3-compatible bucket holding pict-rs's objects.")
    ] = None,
    s3_prefix: Annotated[str, typer.Option(help="Only keys under this prefix.")] = "",
    s3_endpoint: Annotated[
        str | None, typer.Option(help="S3 endpoint URL (MinIO, Garage, ...).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Scanning processes (or Ray actors).")
    ] = 2,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", help="Run on Ray: a cluster ADDRESS, 'auto' to join one, or 'local'."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per scanned object.")
    ] = False,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Purge refused images through pict-rs after scanning (evidence is kept first).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before purging.")] = False,
    rate: Annotated[
        float | None, typer.Option(help="Purges per second (default: federated.purge_rate).")
    ] = None,
) -> None:
    """Scan every stored image through the gate's scanner and banks, logging decisions and
    preserving evidence as the gate does; exit 1 if any was refused or sent to review."""
    from warden.cli import settings_from
    from warden.jobs.rescan import RescanRecorder, RescanResult, StoreSpec, run_rescan
    from warden.services import build_evidence_store, config_version
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog
    from warden.store.rescan_ledger import RescanLedger

    if bool(folder) == bool(s3_bucket):
        err.print("[red]error:[/red] give exactly one of --folder or --s3-bucket")
        raise typer.Exit(2)
    settings = settings_from(ctx)
    if purge and not (settings.federated.lemmy_database_url and settings.pictrs.api_key):
        err.print(
            "[red]error:[/red] --purge needs federated.lemmy_database_url (to know the aliases)"
            " and pictrs.api_key (to purge)"
        )
        raise typer.Exit(2)
    database = Database(settings.database_url)
    database.upgrade()
    recorder = RescanRecorder(
        DecisionLog(database), build_evidence_store(settings), config_version(settings)
    )
    spec = StoreSpec(
        folder=str(folder.resolve()) if folder else None,
        bucket=s3_bucket,
        prefix=s3_prefix,
        endpoint_url=s3_endpoint,
    )
    tag = hashlib.sha256(spec.describe().encode()).hexdigest()[:12]
    ledger = RescanLedger(settings.data_dir / f"rescan-{tag}.sqlite")
    with Progress(
        SpinnerColumn(),
        TextColumn("rescanning"),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("rescan", total=None, last="")

        def on_result(result: RescanResult) -> None:
            bar.update(task, advance=1, last=result.decision)
            if as_json:
                row = {
                    "key": result.key,
                    "decision": result.decision,
                    "reasons": list(result.reasons),
                    "sha256": result.sha256,
                }
                sys.stdout.write(json.dumps(row) + "\n")

        try:
            counts = run_rescan(
                settings,
                spec,
                ledger,
                workers=workers,
                ray_address=ray,
                recorder=recorder,
                on_result=on_result,
            )
        except BaseException:
            ledger.close()
            database.dispose()
            raise
    total = ledger.summary()
    err.print(
        f"this run: {counts or 'nothing new'}; all scans of {spec.describe()}: {total}; ledger {ledger.path}"
    )
    if recorder.evidence_errors:
        err.print(
            f"[red]EVIDENCE NOT PRESERVED for {recorder.evidence_errors} refused objects[/red]"
        )
    try:
        if purge:
            _purge(settings, ledger, yes=yes, rate=rate)
    finally:
        ledger.close()
        database.dispose()
    if total.get("reject") or total.get("review"):
        raise typer.Exit(1)


def _purge(settings: Settings, ledger: RescanLedger, *, yes: bool, rate: float | None) -> None:
    """Map refused keys to aliases and purge them through pict-rs, resumably."""
    from itertools import chain

    from warden.adapters.lemmy_db import LemmyDatabase
    from warden.adapters.pictrs import PictrsAdmin, PictrsError
    from warden.jobs.rescan import purge_refused

    refused = ledger.refused_unpurged()
    if not refused:
        err.print("nothing refused left to purge")
        return
    if not yes and not typer.confirm(
        f"Purge {len(refused):,} refused images from pict-rs (evidence is already kept)?"
    ):
        raise typer.Exit(1)
    fed = settings.federated
    assert fed.lemmy_database_url and settings.pictrs.api_key
    lemmy = LemmyDatabase(fed.lemmy_database_url)
    aliases = chain(
        sorted(lemmy.local_aliases()), (ref.alias for ref in lemmy.references(fed.local_hosts))
    )
    try:
        with PictrsAdmin(
            settings.pictrs.url,
            settings.pictrs.api_key.get_secret_value(),
            timeout_s=settings.pictrs.timeout_s,
        ) as pictrs:
            report = purge_refused(
                ledger, pictrs, aliases, rate=fed.purge_rate if rate is None else rate
            )
    except PictrsError as exc:
        err.print(f"[red]purge stopped:[/red] {exc.message} (resume with the same command)")
        raise typer.Exit(1) from exc
    finally:
        lemmy.close()
    err.print(
        f"refused {report.refused:,}: purged {report.purged:,}, already gone"
        f" {report.already_gone:,}, failed {report.failed:,}, no alias found {report.unmapped:,};"
        f" ledger totals {ledger.purge_summary()}"
    )
    for line in report.errors[:10]:
        err.print(f"  [yellow]{line}[/yellow]")
