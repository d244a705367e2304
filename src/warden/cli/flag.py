"""`warden flag` and `warden unflag`: mark media bad (or a false positive) from the
command line, with the earlier uploads that match and, on request, their uploaders banned.

The hashes land in the flag (or allow) bank in the database; every running
`warden serve` picks them up within `banks.refresh_s` seconds, no restart.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from warden.cli.context import bot_token, database, me, out, settings_from
from warden.config import Settings
from warden.jobs import flag as flagging
from warden.membership.gate import utc_now
from warden.services.factories import bank_store, invite_store, lemmy_client
from warden.store.banks import BankStore
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
            help="Ban the uploaders through Lemmy (lemmy.bot_token); their inviters get a strike.",
        ),
    ] = False,
) -> None:
    """Flag media as bad: its hashes go to the flag bank, and earlier uploads that match
    it (the last `banks.rematch_days` days) are listed with their uploaders (and banned
    with --ban)."""
    settings = settings_from(ctx)
    store = bank_store(database(ctx))
    decisions = DecisionLog(store.db)
    t = flagging.resolve(target, settings, decisions)
    report = flagging.flag(
        t, settings=settings, store=store, decisions=decisions, by=by or me(), reason=reason
    )
    typer.echo(
        f"flagged {t.label}: {len(report.added)} new hashes in {report.pdq_bank} / {report.sha_bank}"
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
    if ban and report.uploaders:
        _ban(settings, store, list(report.uploaders), reason or f"uploaded flagged media {t.label}")


def _ban(settings: Settings, banks: BankStore, names: list[str], reason: str) -> None:
    """Ban `names` through Lemmy; each ban strikes the inviter in the invite ledger."""
    token = bot_token(settings, "--ban needs lemmy.bot_token (an admin account's token)")
    lemmy = lemmy_client(settings)
    ledger = invite_store(settings, banks.db)

    def record(person_id: int, name: str) -> None:
        ledger.record_ban(person_id, name, reason, utc_now(), "warden flag")

    async def go() -> tuple[list[str], list[str]]:
        try:
            return await flagging.ban_uploaders(lemmy, token, names, reason, on_banned=record)
        finally:
            await lemmy.http.aclose()

    banned, errors = asyncio.run(go())
    typer.echo("banned: " + (", ".join(banned) or "nobody new"))
    for line in errors:
        typer.echo(f"  ban failed: {line}")
    if errors:
        raise typer.Exit(1)


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
