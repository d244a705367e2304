"""`warden flag` and `warden unflag`: mark media bad (or a false positive) from the
command line, with the earlier uploads that match and, on request, every copy purged and
their uploaders banned — the console's flag chain (services/flag_chain.py), the same
steps, preview (`--dry-run`) and per-step results, so the two cannot drift.

The hashes land in the flag (or allow) bank in the database; every running
`warden serve` picks them up within `banks.refresh_s` seconds, no restart.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.context import database, me, out, settings_from
from warden.config import Settings
from warden.jobs import flag as flagging
from warden.services.alerts import build_alerts
from warden.services.assembly import build_evidence_store
from warden.services.console_assembly import build_flag_chain
from warden.services.factories import bank_store, lemmy_client
from warden.services.flag_chain import FlagPlan, FlagResult
from warden.store.decisions import DecisionLog

BY = Annotated[str, typer.Option("--by", help="Who is doing this (kept as provenance).")]
REASON = Annotated[str, typer.Option("--reason", help="Why (kept as provenance).")]


def flag(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Image file, decision id, or SHA-256.")],
    reason: REASON = "",
    by: BY = "",
    ban: Annotated[
        bool,
        typer.Option(
            "--ban",
            help="Ban the uploaders through Lemmy with their content removed (lemmy.bot_token); their inviters get a strike.",
        ),
    ] = False,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Keep the file as evidence, then purge every copy from pict-rs (pictrs.api_key): this and every earlier matching upload.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would happen, step by step; do nothing."),
    ] = False,
) -> None:
    """Flag media as bad through the console's flag chain (bank; --purge; --ban).

    Its hashes go to the flag bank, and earlier uploads that match it (the last
    `banks.rematch_days` days) are listed with their uploaders; --purge keeps the
    evidence and purges every copy, --ban bans the uploaders with their content
    removed and strikes their inviters (--purge --ban is the console's Flag).
    --dry-run prints the preview. Exit status 1 when any step failed (each is safe
    to run again)."""
    settings = settings_from(ctx)
    db = database(ctx)
    steps = ("bank", *(("evidence", "purge") if purge else ()), *(("ban", "strike") if ban else ()))
    lemmy = lemmy_client(settings)
    evidence = build_evidence_store(settings) if purge else None
    alerts = None if dry_run else build_alerts(settings)  # flag/ban alerts, as the console
    chain = build_flag_chain(settings, db, evidence=evidence, lemmy=lemmy, alerts=alerts)
    subject = chain.subject(target)
    who = by or me()
    why = reason or f"uploaded flagged media {subject.label}"
    if dry_run:
        asyncio.run(lemmy.http.aclose())
        _print_plan(chain.plan(subject, steps))
        return

    async def go() -> FlagResult:
        if alerts is not None:
            alerts.start()
        try:
            return await chain.run(subject, actor=who, reason=why, steps=steps, via="warden flag")
        finally:
            await lemmy.http.aclose()
            if alerts is not None:  # delivered (each channel within alerts.timeout_s)
                await alerts.drain()
                await alerts.aclose()

    result = asyncio.run(go())
    if result.report is not None:
        _print_report(settings, result.report)
    if "ban" in steps:
        typer.echo("banned: " + (", ".join(result.banned) or "nobody new"))
    for step in result.steps:
        typer.echo(f"  {step.name}: {'done' if step.ok else 'FAILED'} — {step.detail}")
    if alerts is not None and result.report is not None:
        typer.echo("alerts: flag_action" + (", ban_action" if result.banned else ""))
    if not result.ok:
        raise typer.Exit(1)


def _print_plan(plan: FlagPlan) -> None:
    """The console's preview, as lines: what each chosen step would do."""
    typer.echo(f"dry run: flagging {plan.label} would")
    lines = {
        "bank": f"bank {plan.hashes} hashes in {plan.bank} (the next copy is refused everywhere);"
        f" {len(plan.earlier)} earlier uploads match"
        + (": " + ", ".join(f"#{r.id}" for r in plan.earlier) if plan.earlier else ""),
        "evidence": f"evidence: {plan.evidence}",
        "purge": "purge from pict-rs, each file with every alias: "
        + (", ".join(plan.aliases) or "no stored copy is known"),
        "ban": "ban through Lemmy, content removed: "
        + (", ".join(plan.uploaders) or "no uploader is known"),
        "strike": "strike inviters: "
        + (", ".join(f"{i} (invited {u})" for u, i in plan.inviters.items()) or "none known"),
    }
    for step in plan.steps:
        typer.echo(f"  {step}: {lines[step]}")
    if "ban" not in plan.steps and plan.uploaders:
        typer.echo("uploaders: " + ", ".join(plan.uploaders))
    for problem in plan.problems:
        typer.echo(f"  problem: {problem}")
    typer.echo("nothing was done")


def _print_report(settings: Settings, report: flagging.FlagReport) -> None:
    """What the bank step banked, and the earlier uploads it matched."""
    typer.echo(
        f"flagged {report.target.label}: {len(report.added)} new hashes in"
        f" {report.pdq_bank} / {report.sha_bank}"
    )
    for f in report.low_quality:
        typer.echo(f"  frame {f.frame}: PDQ quality {f.quality} too low to bank (SHA-256 only)")
    if report.earlier:
        table = Table("decision", "time", "source", "uploader", "was", "distance")
        for record, m in report.earlier:
            table.add_row(
                str(record.id),
                record.created_at.strftime("%Y-%m-%d %H:%M"),
                record.source,
                record.account or record.uploader or "",
                record.verdict.decision.value,
                str(m.distance),
            )
        out.print(f"{len(report.earlier)} earlier decisions match:")
        out.print(table)
    else:
        typer.echo(f"no earlier decision in the last {settings.banks.rematch_days} days matches")
    if report.uploaders:
        typer.echo("uploaders: " + ", ".join(report.uploaders))


def unflag(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Image file, decision id, or SHA-256.")],
    reason: REASON = "",
    by: BY = "",
) -> None:
    """Undo a false positive: the hashes leave every refusing bank and join the allow bank."""
    settings = settings_from(ctx)
    store = bank_store(database(ctx))
    t = flagging.resolve(target, settings, DecisionLog(store.db))
    report = flagging.unflag(t, settings=settings, store=store, by=by or me(), reason=reason)
    removed = ", ".join(sorted(set(report.removed_from))) or "no refusing bank"
    typer.echo(
        f"unflagged {t.label}: removed from {removed}; allowed by {', '.join(report.allow_banks)}"
    )
