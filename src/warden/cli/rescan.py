"""`warden rescan`: scan media pict-rs already stores (folder, S3 or through pict-rs), resumably."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from warden.cli.context import database, err, on_error, settings_from
from warden.config import Settings
from warden.errors import ConfigError, HashListingUnavailable, InputError
from warden.jobs.rescan import RescanRecorder, RescanResult, StoreSpec, run_rescan
from warden.jobs.rescan_purge import purge_refused
from warden.services import build_evidence_store, config_version
from warden.services.factories import lemmy_database, pictrs_admin
from warden.store.decisions import DecisionLog
from warden.store.rescan_ledger import RescanLedger


def rescan(
    ctx: typer.Context,
    folder: Annotated[
        Path | None, typer.Option(help="A pict-rs filesystem store (its files folder).")
    ] = None,
    s3_bucket: Annotated[
        str | None, typer.Option(help="An S3-compatible bucket holding pict-rs's objects.")
    ] = None,
    s3_prefix: Annotated[str, typer.Option(help="Only keys under this prefix.")] = "",
    through_pictrs: Annotated[
        bool,
        typer.Option(
            "--pictrs",
            help="Read every stored file through pict-rs 0.5 itself (pictrs.url, pictrs.api_key).",
        ),
    ] = False,
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
    on_error(ctx, exit_code=2)  # 1 means "refused": a failure is "could not tell"
    if sum((folder is not None, s3_bucket is not None, through_pictrs)) != 1:
        raise InputError("give exactly one of --folder, --s3-bucket or --pictrs")
    settings = settings_from(ctx)
    if through_pictrs and not settings.pictrs.api_key:
        raise ConfigError("--pictrs needs pictrs.api_key (to list pict-rs's files)")
    if purge and not settings.pictrs.api_key:
        raise ConfigError("--purge needs pictrs.api_key (pict-rs's internal API)")
    db = database(ctx)
    recorder = RescanRecorder(
        DecisionLog(db), build_evidence_store(settings), config_version(settings)
    )
    spec = StoreSpec(
        folder=str(folder.resolve()) if folder else None,
        bucket=s3_bucket,
        prefix=s3_prefix,
        endpoint_url=s3_endpoint,
        pictrs_url=settings.pictrs.url if through_pictrs else None,
    )
    tag = hashlib.sha256(spec.describe().encode()).hexdigest()[:12]
    ledger = RescanLedger(settings.data_dir / f"rescan-{tag}.sqlite")
    try:
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

            # listing through pict-rs fails on 0.4, a wrong key, or when unreachable
            counts = run_rescan(
                settings,
                spec,
                ledger,
                workers=workers,
                ray_address=ray,
                recorder=recorder,
                on_result=on_result,
            )
        total = ledger.summary()
        err.print(
            f"this run: {counts or 'nothing new'}; all scans of {spec.describe()}: {total};"
            f" ledger {ledger.path}"
        )
        if recorder.evidence_errors:
            err.print(
                f"[red]EVIDENCE NOT PRESERVED for {recorder.evidence_errors} refused objects[/red]"
            )
        if purge:
            on_error(ctx, hint="purge stopped; resume with the same command")
            _purge(settings, ledger, yes=yes, rate=rate)
    finally:
        ledger.close()
        db.dispose()
    if total.get("reject") or total.get("review"):
        raise typer.Exit(1)


def _purge(settings: Settings, ledger: RescanLedger, *, yes: bool, rate: float | None) -> None:
    """Map refused keys to aliases and purge them through pict-rs, resumably.

    pict-rs 0.5 lists its files (`/internal/hashes`): keys map by SHA-256, no
    Lemmy database needed. pict-rs 0.4 cannot: then every alias Lemmy knows is
    turned into its storage identifier (needs federated.lemmy_database_url)."""
    refused = ledger.refused_unpurged()
    if not refused:
        err.print("nothing refused left to purge")
        return
    if not yes and not typer.confirm(
        f"Purge {len(refused):,} refused images from pict-rs (evidence is already kept)?"
    ):
        raise typer.Exit(1)
    fed = settings.federated
    with pictrs_admin(settings) as pictrs:
        by_sha256: dict[str, str] = {}
        aliases: Iterable[str] = ()
        try:
            for stored in pictrs.stored_files():
                if stored.aliases:
                    by_sha256.setdefault(stored.sha256, stored.aliases[0])
        except HashListingUnavailable as exc:  # pict-rs 0.4: Lemmy's aliases instead
            err.print(f"[yellow]note:[/yellow] {exc.message}")
            aliases = _lemmy_aliases(settings)
        report = purge_refused(
            ledger,
            pictrs,
            aliases,
            by_sha256=by_sha256,
            rate=fed.purge_rate if rate is None else rate,
        )
    err.print(
        f"refused {report.refused:,}: purged {report.purged:,}, already gone"
        f" {report.already_gone:,}, failed {report.failed:,}, no alias found {report.unmapped:,};"
        f" ledger totals {ledger.purge_summary()}"
    )
    for line in report.errors[:10]:
        err.print(f"  [yellow]{line}[/yellow]")


def _lemmy_aliases(settings: Settings) -> list[str]:
    """Every alias Lemmy's database knows (pict-rs 0.4, which cannot list its files)."""
    fed = settings.federated
    if not fed.lemmy_database_url:
        raise ConfigError(
            "pict-rs 0.4 cannot list its files: set federated.lemmy_database_url"
            " so the aliases Lemmy knows can be mapped"
        )
    lemmy = lemmy_database(settings)
    try:
        return sorted(lemmy.known_aliases(fed.local_hosts))
    finally:
        lemmy.close()
