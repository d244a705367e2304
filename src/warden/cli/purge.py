"""`warden purge ...`: remove federated media that pict-rs cached."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from warden.cli.context import on_error, out, settings_from
from warden.errors import ConfigError
from warden.jobs.purge import plan_purge, run_purge
from warden.services.factories import lemmy_database, pictrs_admin
from warden.store.purge_ledger import PurgeLedger

purge_app = typer.Typer(help="Purge media from pict-rs.", no_args_is_help=True)


@purge_app.command("federated")
def purge_federated(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and report; purge nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before purging.")] = False,
    rate: Annotated[
        float | None, typer.Option(help="Purges per second (default: federated.purge_rate).")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Try again the aliases that failed last time.")
    ] = False,
    keep_unreferenced: Annotated[
        bool,
        typer.Option(
            "--keep-unreferenced",
            help="Purge only files with evidence that they federated in (cached thumbnails of"
            " federated posts); keep files nothing in Lemmy references.",
        ),
    ] = False,
) -> None:
    """Purge every image that federated in (never a local upload, nor a file one shares); resumable."""
    settings = settings_from(ctx)
    fed = settings.federated
    if not fed.lemmy_database_url or not fed.local_hosts:
        raise ConfigError("set federated.lemmy_database_url and federated.local_hosts first")
    if not settings.pictrs.api_key:
        raise ConfigError(
            "set pictrs.api_key: the plan lists pict-rs's files and the"
            " purge goes through its internal API"
        )
    on_error(ctx, hint="resume with the same command")  # the ledger keeps what was done
    lemmy = lemmy_database(settings)
    ledger = PurgeLedger(settings.data_dir / "purge-federated.sqlite")
    pictrs = pictrs_admin(settings)
    try:
        if retry_failed:
            out.print(f"{ledger.retry_failed()} failed aliases planned again")
        plan = plan_purge(
            lemmy, ledger, fed.local_hosts, pictrs, unreferenced=not keep_unreferenced
        )
        todo = ledger.count("planned") + ledger.count("pending")
        listed = "not listable (pict-rs 0.4)" if plan.listed is None else f"{plan.listed:,}"
        out.print(
            f"Lemmy schema {plan.schema}; files in pict-rs: {listed}; federated files to purge:"
            f" {plan.candidates:,} (new in this plan: {plan.new:,}); kept as local:"
            f" {plan.local_skipped:,}; kept, origin unknown: {plan.unattributed:,};"
            f" left to purge: {todo:,}; ledger: {ledger.path}"
        )
        for note in plan.notes:
            out.print(f"[yellow]note:[/yellow] {note}")
        sample = ledger.sample(10)
        if sample:
            table = Table("alias", "why it is federated", title="sample")
            for alias, source in sample:
                table.add_row(alias, source)
            out.print(table)
        if dry_run or todo == 0:
            out.print("dry run: nothing purged" if dry_run else "nothing to purge")
            return
        if not yes and not typer.confirm(f"Purge {todo:,} images from pict-rs?"):
            raise typer.Exit(1)
        with Progress(
            TextColumn("purging"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=out,
        ) as bar:
            task = bar.add_task("purge", total=todo)
            report = run_purge(
                lemmy,
                pictrs,
                ledger,
                rate=fed.purge_rate if rate is None else rate,
                protected=plan.protected,
                on_step=lambda _a, _r: bar.advance(task),
            )
    finally:
        pictrs.close()
        lemmy.close()
        summary = ledger.summary()
        ledger.close()
    out.print(
        f"purged {report.purged:,}, already gone {report.already_gone:,}, "
        f"kept (local) {report.skipped_local:,}, failed {report.failed:,}; ledger totals {summary}"
    )
    for line in report.errors[:10]:
        out.print(f"  [yellow]{line}[/yellow]")
    if report.failed:
        raise typer.Exit(1)


@purge_app.command("status")
def purge_status(ctx: typer.Context) -> None:
    """Show the federated purge ledger: how many aliases are in each state."""
    path = settings_from(ctx).data_dir / "purge-federated.sqlite"
    if not path.exists():
        out.print("no federated purge has been planned")
        return
    ledger = PurgeLedger(path)
    out.print(ledger.summary())
    ledger.close()
