"""`warden rescan`: scan media pict-rs already stores (folder or S3), resumably."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
) -> None:
    """Scan every stored image through the gate's scanner; exit 1 if any was refused or sent to review."""
    from warden.cli import settings_from
    from warden.jobs.rescan import RescanResult, StoreSpec, run_rescan
    from warden.store.rescan_ledger import RescanLedger

    if bool(folder) == bool(s3_bucket):
        err.print("[red]error:[/red] give exactly one of --folder or --s3-bucket")
        raise typer.Exit(2)
    settings = settings_from(ctx)
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
                settings, spec, ledger, workers=workers, ray_address=ray, on_result=on_result
            )
        finally:
            total = ledger.summary()
            ledger.close()
    err.print(
        f"this run: {counts or 'nothing new'}; all scans of {spec.describe()}: {total}; ledger {ledger.path}"
    )
    if total.get("reject") or total.get("review"):
        raise typer.Exit(1)
