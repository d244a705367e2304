"""`warden hashes`: hash banks from the command line (`warden flag` is cli/flag.py).

Changes land in the database; every running `warden serve` picks them up within
`banks.refresh_s` seconds, no restart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from warden.adapters import hash_exchange
from warden.cli.context import database, me, on_error, out, settings_from
from warden.domain.banks import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_PDQ_THRESHOLD,
    Bank,
    BankAction,
    BankKind,
)
from warden.domain.signals import signal_type
from warden.domain.verdict import FrameHash
from warden.errors import HashFileError
from warden.media.matcher import BankMatcher
from warden.services.bank_sync import bank_sync
from warden.services.factories import bank_store
from warden.store.bank_import import IMPORT_CHUNK, NewEntry
from warden.store.banks import BankStore

if TYPE_CHECKING:
    from warden.config import Settings
    from warden.jobs.flag import Target

hashes_app = typer.Typer(
    help="Hash banks: known media matched before the classifier runs.", no_args_is_help=True
)
banks_app = typer.Typer(help="List, create, change and delete banks.")
hashes_app.add_typer(banks_app, name="banks")

BY = Annotated[str, typer.Option("--by", help="Who is doing this (kept as provenance).")]
REASON = Annotated[str, typer.Option("--reason", help="Why (kept as provenance).")]


@hashes_app.callback()
def _hashes(ctx: typer.Context) -> None:
    """Hash banks: known media matched before the classifier runs."""
    on_error(ctx, exit_code=1)  # every refusal here, bad input included, exits 1 (as always)


def _store(ctx: typer.Context, *, lookup: bool = False) -> BankStore:
    return bank_store(database(ctx, lookup=lookup))


def _resolve(target: str, settings: Settings, store: BankStore) -> Target:
    """An image file's hashes (jobs/flag.py `resolve`). Loaded here, on first use:
    the image stack (decoders, PDQ compiled with numba: ~0.3 s) is needed for image
    files only, and `hashes match <hash>` answers in ≤ 1 s at 10 M entries without it
    (issue 16); the same lazy loading as the commands themselves (cli/__init__.py)."""
    from warden.jobs.flag import resolve  # the image stack: see above
    from warden.store.decisions import DecisionLog

    return resolve(target, settings, DecisionLog(store.db))


def _keep_features(store: BankStore, bank: Bank, target: Target) -> int | None:
    """jobs/flag.py `keep_features_in`, loaded with the image stack (see `_resolve`)."""
    from warden.jobs.flag import keep_features_in  # the image stack: see `_resolve`

    return keep_features_in(store, target, bank)


@banks_app.callback(invoke_without_command=True)
def banks(ctx: typer.Context) -> None:
    """Every bank: kind, action, csam flag, threshold, minimum quality, entries."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table("bank", "kind", "action", "csam", "threshold", "min quality", "entries")
    for bank, count in _store(ctx).banks():
        pdq = not signal_type(bank.kind.value).exact  # a threshold means something
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
    bank = _store(ctx).create_bank(
        name,
        kind,
        action=action,
        csam=csam,
        pdq_threshold=threshold,
        min_quality=min_quality,
        description=description,
    )
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
    bank = _store(ctx).update_bank(
        name,
        action=action,
        csam=csam,
        pdq_threshold=threshold,
        min_quality=min_quality,
        description=description,
    )
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
    count = _store(ctx).delete_bank(name)
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
    store = _store(ctx)
    kind = store.bank(bank).kind
    values: list[str] = []
    files: list[Target] = []
    for item in hashes:
        if Path(item).is_file():
            target = _resolve(item, settings_from(ctx), store)
            files.append(target)
            if signal_type(kind.value).exact and target.sha256:
                values.append(target.sha256)
            else:
                values.extend(f.pdq for f in target.frames)
        else:
            values.append(item)
    result = store.add(bank, [NewEntry(v, "warden hashes add", by or me(), reason) for v in values])
    # the files' keypoints too (issue 16): a crop or a small turn of them is refused
    held = sum(_keep_features(store, store.bank(bank), target) is not None for target in files)
    typer.echo(
        f"{bank}: {result.added} added, {result.reactivated} restored, "
        f"{result.existing} already there"
        + (f"; keypoints kept for {held} file(s)" if held else "")
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
    n = _store(ctx).remove(bank, hashes, by=by or me(), reason=reason)
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
    for e in _store(ctx).entries(bank, limit=limit, include_removed=removed):
        when = e.created_at.strftime("%Y-%m-%d %H:%M") if e.created_at else ""
        table.add_row(str(e.id), e.value, e.source, e.added_by, e.reason, when)
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
    pending: dict[str, tuple[list[str], list[str]]] = {}  # bank -> values, reasons
    who = by or me()  # once: me() asks the system for the user name
    kinds: dict[str, BankKind] = {}

    def flush(name: str) -> None:
        values, reasons = pending.pop(name)
        result = store.add_many(name, values, reasons, source=source, added_by=who)
        t = totals.setdefault(name, [0, 0, 0])
        t[0] += result.added
        t[1] += result.reactivated
        t[2] += result.existing

    try:
        stream: Any = sys.stdin if str(file) == "-" else file.open(encoding="utf-8")
        with stream, _progress() as progress:
            task = progress.add_task(f"importing {file.name}", total=None)
            for batch in hash_exchange.read_batches(stream, fmt, kind=kind, stats=stats):
                for group in batch:
                    name = group.bank or bank
                    if name is None:
                        raise HashFileError(f"line {group.line}: names no bank; pass --bank")
                    if name not in kinds:
                        kinds[name] = store.bank(name).kind
                    if group.kind is not kinds[name]:  # a SHA-256 is 64 hex digits too
                        raise HashFileError(
                            f"line {group.line}: a {group.kind.value} hash for bank {name!r},"
                            f" which holds {kinds[name].value} hashes"
                        )
                    values, reasons = pending.setdefault(name, ([], []))
                    values.extend(group.values)
                    reasons.extend([note or reason for note in group.notes])
                    progress.advance(task, len(group.values))
                    if len(values) >= IMPORT_CHUNK:  # one transaction per chunk
                        flush(name)
    finally:
        for name in list(pending):  # what was read (before a bad line, too) is kept
            flush(name)
    for name, (added, restored, existing) in totals.items():
        typer.echo(f"{name}: {added:,} added, {restored:,} restored, {existing:,} already there")
    for skipped_type, n in stats.skipped.items():
        typer.echo(f"skipped {n:,} {skipped_type} signals (not an image hash Warden matches)")


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
    entries = _store(ctx).entries(bank)
    if output is None:
        n = hash_exchange.write(sys.stdout, fmt, entries)
    else:
        with output.open("w", encoding="utf-8") as fh:
            n = hash_exchange.write(fh, fmt, entries)
    if output is not None:
        typer.echo(f"{n:,} entries written to {output}")


@hashes_app.command("match")
def match(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Image file, PDQ hex, or SHA-256 hex.")],
) -> None:
    """Which bank entries an image or hash matches (exit 1 when any)."""
    settings = settings_from(ctx)
    is_file = Path(target).is_file()
    store = _store(ctx, lookup=not is_file)  # a hash: banks read as they are
    matcher = BankMatcher()
    bank_sync(settings, store, matcher, warm=False).load()  # one query: no compiled kernel
    if is_file:
        t = _resolve(target, settings, store)
        sha, frames = t.sha256 or "", t.frames
    else:
        value = target.strip().lower()
        sha, frames = value, (FrameHash(0, value, 100),)
    found = matcher.match(sha, frames)
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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} lines"),
        TimeElapsedColumn(),
        transient=True,
    )
