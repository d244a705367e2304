"""`warden hashes`, `warden flag`, `warden unflag`: hash banks from the command line.

Changes land in the database; every running `warden serve` picks them up within
`banks.refresh_s` seconds, no restart.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from warden.adapters import hash_exchange
from warden.domain.banks import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_PDQ_THRESHOLD,
    BankAction,
    BankKind,
)
from warden.errors import HashFileError, WardenError
from warden.store.banks import BankStore, NewEntry

if TYPE_CHECKING:
    from warden.config import Settings

hashes_app = typer.Typer(
    help="Hash banks: known media matched before the classifier runs.", no_args_is_help=True
)
banks_app = typer.Typer(help="List, create, change and delete banks.")
hashes_app.add_typer(banks_app, name="banks")

out = Console()
BY = Annotated[str, typer.Option("--by", help="Who is doing this (kept as provenance).")]
REASON = Annotated[str, typer.Option("--reason", help="Why (kept as provenance).")]


def _store(ctx: typer.Context) -> BankStore:
    from warden.cli import settings_from
    from warden.store.database import Database

    db = Database(settings_from(ctx).database_url)
    db.upgrade()
    return BankStore(db)


def _fail(exc: Exception, code: int = 1) -> typer.Exit:
    from warden.cli import err

    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code)


@banks_app.callback(invoke_without_command=True)
def banks(ctx: typer.Context) -> None:
    """Every bank: kind, action, csam flag, threshold, minimum quality, entries."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("bank", "kind", "action", "csam", "threshold", "min quality", "entries")
    for bank, count in _store(ctx).banks():
        pdq = bank.kind is BankKind.PDQ
        table.add_row(
            bank.name,
            bank.kind.value,
            bank.action.value,
            "yes" if bank.csam else "",
            str(bank.pdq_threshold) if pdq else "-",
            str(bank.min_quality) if pdq else "-",
            f"{count:,}",
        )
    out.print(table)


@banks_app.command("create")
def create_bank(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bank name (lower case, digits, . _ -).")],
    kind: Annotated[BankKind, typer.Option(help="pdq (near duplicates) or sha256 (exact).")],
    action: Annotated[BankAction, typer.Option(help="What a match does.")] = BankAction.REJECT,
    csam: Annotated[
        bool, typer.Option("--csam", help="Matches are preserved as evidence, never shown.")
    ] = False,
    threshold: Annotated[
        int, typer.Option(help="PDQ: most differing bits for a match.")
    ] = DEFAULT_PDQ_THRESHOLD,
    min_quality: Annotated[
        int, typer.Option(help="PDQ: frames below this quality are not matched.")
    ] = DEFAULT_MIN_QUALITY,
    description: Annotated[str, typer.Option(help="Where the list comes from.")] = "",
) -> None:
    """Create a bank."""
    try:
        bank = _store(ctx).create_bank(
            name,
            kind,
            action=action,
            csam=csam,
            pdq_threshold=threshold,
            min_quality=min_quality,
            description=description,
        )
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"bank {bank.name} created ({bank.kind.value}, {bank.action.value})")


@banks_app.command("update")
def update_bank(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bank name.")],
    action: Annotated[BankAction | None, typer.Option(help="What a match does.")] = None,
    csam: Annotated[bool | None, typer.Option("--csam/--not-csam", help="CSAM flag.")] = None,
    threshold: Annotated[int | None, typer.Option(help="PDQ distance threshold.")] = None,
    min_quality: Annotated[int | None, typer.Option(help="PDQ minimum quality.")] = None,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
) -> None:
    """Change a bank's action, flag, threshold or description."""
    try:
        bank = _store(ctx).update_bank(
            name,
            action=action,
            csam=csam,
            pdq_threshold=threshold,
            min_quality=min_quality,
            description=description,
        )
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"bank {bank.name}: {bank.action.value}, threshold {bank.pdq_threshold}")


@banks_app.command("delete")
def delete_bank(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bank name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a bank and all its entries (export it first to keep them)."""
    if not yes:
        typer.confirm(f"Delete bank {name} and every entry in it?", abort=True)
    try:
        count = _store(ctx).delete_bank(name)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"bank {name} deleted with {count:,} entries")


@hashes_app.command("add")
def add(
    ctx: typer.Context,
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    hashes: Annotated[list[str], typer.Argument(help="Hex hashes, or image files to hash.")],
    reason: REASON = "",
    by: BY = "",
) -> None:
    """Add hashes (or the hashes of image files) to a bank."""
    from warden.cli import settings_from
    from warden.jobs.flag import resolve
    from warden.store.decisions import DecisionLog

    store = _store(ctx)
    try:
        kind = store.bank(bank).kind
        values: list[str] = []
        for item in hashes:
            if Path(item).is_file():
                target = resolve(item, settings_from(ctx), DecisionLog(store.db))
                if kind is BankKind.SHA256 and target.sha256:
                    values.append(target.sha256)
                else:
                    values.extend(f.pdq for f in target.frames)
            else:
                values.append(item)
        result = store.add(
            bank, [NewEntry(v, "warden hashes add", by or _me(), reason) for v in values]
        )
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"{bank}: {result.added} added, {result.reactivated} restored, "
        f"{result.existing} already there"
    )


@hashes_app.command("remove")
def remove(
    ctx: typer.Context,
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    hashes: Annotated[list[str], typer.Argument(help="Hex hashes or entry ids.")],
    reason: REASON = "",
    by: BY = "",
) -> None:
    """Remove entries (they are kept, marked removed, for the record)."""
    try:
        n = _store(ctx).remove(bank, hashes, by=by or _me(), reason=reason)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(f"{bank}: {n} removed")


@hashes_app.command("list")
def list_entries(
    ctx: typer.Context,
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    limit: Annotated[int, typer.Option(help="Most entries shown.")] = 50,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed entries.")] = False,
) -> None:
    """A bank's entries with their provenance (source, who, why, when)."""
    table = Table("id", "hash", "source", "by", "reason", "added")
    try:
        for e in _store(ctx).entries(bank, limit=limit, include_removed=removed):
            when = e.created_at.strftime("%Y-%m-%d %H:%M") if e.created_at else ""
            table.add_row(str(e.id), e.value, e.source, e.added_by, e.reason, when)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    out.print(table)


@hashes_app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Hash list ('-' for standard input).")],
    fmt: Annotated[str, typer.Option("--format", help="csv or te (ThreatExchange).")] = "csv",
    bank: Annotated[
        str | None, typer.Option(help="Bank for lines that name none (te: every line).")
    ] = None,
    kind: Annotated[BankKind | None, typer.Option(help="te: kind of bare-hash lines.")] = None,
    reason: REASON = "",
    by: BY = "",
) -> None:
    """Import a hash list into banks (created beforehand with `hashes banks create`)."""
    store = _store(ctx)
    stats = hash_exchange.ReadStats()
    source = f"import {file.name}"
    totals: dict[str, list[int]] = {}
    pending: dict[str, list[NewEntry]] = {}

    def flush(name: str) -> None:
        result = store.add(name, pending.pop(name))
        t = totals.setdefault(name, [0, 0, 0])
        t[0] += result.added
        t[1] += result.reactivated
        t[2] += result.existing

    try:
        stream: Any = sys.stdin if str(file) == "-" else file.open(encoding="utf-8")
        with stream, _progress() as progress:
            task = progress.add_task(f"importing {file.name}", total=None)
            for line in hash_exchange.read(stream, fmt, kind=kind, stats=stats):
                name = line.bank or bank
                if name is None:
                    raise HashFileError(f"line {line.line}: names no bank; pass --bank")
                entry = NewEntry(line.value, source, by or _me(), line.note or reason)
                pending.setdefault(name, []).append(entry)
                if len(pending[name]) >= 5_000:
                    flush(name)
                progress.advance(task)
            for name in list(pending):
                flush(name)
    except (WardenError, ValueError, OSError) as exc:
        for name in list(pending):  # what was read before the bad line is kept
            flush(name)
        raise _fail(exc) from exc
    for name, (added, restored, existing) in totals.items():
        typer.echo(f"{name}: {added:,} added, {restored:,} restored, {existing:,} already there")
    for signal_type, n in stats.skipped.items():
        typer.echo(f"skipped {n:,} {signal_type} signals (not an image hash Warden matches)")


@hashes_app.command("export")
def export(
    ctx: typer.Context,
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or te (ThreatExchange).")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default: stdout).")
    ] = None,
) -> None:
    """Export a bank's live entries as a hash list."""
    store = _store(ctx)
    try:
        entries = store.entries(bank)
        if output is None:
            n = hash_exchange.write(sys.stdout, fmt, entries)
        else:
            with output.open("w", encoding="utf-8") as fh:
                n = hash_exchange.write(fh, fmt, entries)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    if output is not None:
        typer.echo(f"{n:,} entries written to {output}")


@hashes_app.command("match")
def match(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Image file, PDQ hex, or SHA-256 hex.")],
) -> None:
    """Which bank entries an image or hash matches (exit 1 when any)."""
    from warden.cli import settings_from
    from warden.domain.verdict import FrameHash
    from warden.jobs.flag import resolve
    from warden.media.matcher import BankMatcher
    from warden.store.banks import BankSync
    from warden.store.decisions import DecisionLog

    store = _store(ctx)
    matcher = BankMatcher()
    BankSync(store, matcher).load()
    try:
        if Path(target).is_file():
            t = resolve(target, settings_from(ctx), DecisionLog(store.db))
            sha, frames = t.sha256 or "", t.frames
        else:
            value = target.strip().lower()
            sha, frames = value, (FrameHash(0, value, 100),)
        found = matcher.match(sha, frames)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    if not found:
        typer.echo("no match")
        return
    table = Table("bank", "action", "entry", "distance", "frame", "variant")
    for m in found:
        table.add_row(
            m.bank.name,
            m.bank.action.value,
            str(m.entry_id),
            str(m.distance),
            str(m.frame),
            m.variant,
        )
    out.print(table)
    raise typer.Exit(1)


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
    from warden.cli import settings_from
    from warden.jobs import flag as flagging
    from warden.store.decisions import DecisionLog

    settings = settings_from(ctx)
    store = _store(ctx)
    decisions = DecisionLog(store.db)
    try:
        t = flagging.resolve(target, settings, decisions)
        report = flagging.flag(
            t, settings=settings, store=store, decisions=decisions, by=by or _me(), reason=reason
        )
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
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
                record.uploader or "",
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


def _ban(settings: Settings, bank_store: BankStore, names: list[str], reason: str) -> None:
    import asyncio

    from warden.adapters.lemmy import build_lemmy
    from warden.jobs.flag import ban_uploaders
    from warden.membership.gate import utc_now
    from warden.store.invites import InviteStore

    if settings.lemmy.bot_token is None:
        raise _fail(ValueError("--ban needs lemmy.bot_token (an admin account's token)"), 2)
    lemmy = build_lemmy(settings.lemmy.url, settings.lemmy.api, timeout_s=settings.lemmy.timeout_s)
    ledger = InviteStore(bank_store.db, settings.invites.policy())

    def record(person_id: int, name: str) -> None:
        ledger.record_ban(person_id, name, reason, utc_now(), "warden flag")

    async def go() -> tuple[list[str], list[str]]:
        try:
            token = settings.lemmy.bot_token.get_secret_value()  # type: ignore[union-attr]
            return await ban_uploaders(lemmy, token, names, reason, on_banned=record)
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
    from warden.cli import settings_from
    from warden.jobs import flag as flagging
    from warden.store.decisions import DecisionLog

    settings = settings_from(ctx)
    store = _store(ctx)
    try:
        t = flagging.resolve(target, settings, DecisionLog(store.db))
        report = flagging.unflag(t, settings=settings, store=store, by=by or _me(), reason=reason)
    except (WardenError, ValueError) as exc:
        raise _fail(exc) from exc
    removed = ", ".join(sorted(set(report.removed_from))) or "no refusing bank"
    typer.echo(
        f"unflagged {t.label}: removed from {removed}; allowed by {', '.join(report.allow_banks)}"
    )


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} lines"),
        TimeElapsedColumn(),
        transient=True,
    )
