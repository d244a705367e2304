"""`warden eval`: the refusal rate on an admin's own folder, and thresholds from data."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from warden.cli.context import err, on_error, out, settings_from
from warden.errors import InputError, ModelUnavailable
from warden.jobs import evaluate as ev
from warden.jobs.evaluate import CLEARED, THRESHOLDS, Record
from warden.jobs.scan import iter_files
from warden.services import build_scanner

Expect = Literal["accept", "review", "reject"]


def evaluate(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder of images (sub-folders included).")],
    expect: Annotated[
        Expect | None,
        typer.Option(help="What every file should get (ordinary pictures: accept)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="CSV of 'path,expect' rows (paths relative to FOLDER) for a labelled set.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Save the threshold plot here (.svg, or .png)."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Files decoded in parallel.")
    ] = 2,
) -> None:
    """Measure a folder: refusal rate, labels behind each refusal, rates per threshold.

    Rates per threshold need expectations: --expect for every file, --labels for a
    CSV, or sub-folders named accept, review and reject."""
    on_error(ctx, exit_code=2)  # whatever stops it, nothing was measured
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    if plot is not None and plot.suffix.lower() not in (".svg", ".png"):
        raise InputError(f"--plot must end in .svg or .png, not {plot.name!r}")
    expected = ev.read_labels(labels, folder) if labels else {}
    settings = settings_from(ctx)
    if settings.model.threads == 0:
        settings = settings.model_copy(deep=True)
        settings.model.threads = max(1, (os.cpu_count() or 1) // workers)
    scanner = build_scanner(settings, decode_workers=workers)
    if scanner.classifier is None:
        scanner.close()
        raise ModelUnavailable(f"no classifier: {scanner._classifier_error}")
    total = sum(1 for _ in iter_files([folder], True))
    records: list[Record] = []
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("eval", total=total)
            files = iter_files([folder], True)
            for record in ev.evaluate(
                scanner, files, folder, expect=expect, labels=expected, workers=workers
            ):
                records.append(record)
                progress.advance(task)
    finally:
        scanner.close()
    if not records:
        raise InputError(f"no files in {folder}")
    out.print(_summary(records))
    refused = [r for r in records if r.refused or r.decision == "error"]
    if refused:
        out.print(_refusals(refused, folder))
    cleared = [r for r in records if CLEARED in r.reasons]
    if cleared:
        out.print(_cleared(cleared, folder))
    rules = [rule.label for rule in settings.policy.label_policy().rules]
    table = ev.threshold_table(records, ev.interesting_labels(records, rules))
    for group, rows in table.items():
        out.print(_thresholds(group, rows, settings.policy.labels))
    if plot is not None:
        if not table:
            err.print("[yellow]no expectations given (--expect, --labels): nothing to plot[/]")
        else:
            ev.save_plot(table, plot, f"warden eval {folder.name}")
            out.print(f"plot saved to {plot} (drawn without matplotlib)")


def _summary(records: list[Record]) -> Table:
    counts = Counter(r.decision for r in records)
    n = len(records)
    table = Table(title=f"warden eval: {n} files")
    table.add_column("decision")
    table.add_column("files", justify="right")
    table.add_column("share", justify="right")
    for decision in ("accept", "review", "reject", "error"):
        table.add_row(decision, str(counts[decision]), f"{counts[decision] / n:.1%}")
    refused = counts["review"] + counts["reject"]
    table.add_row("[bold]refused (review + reject)[/]", str(refused), f"[bold]{refused / n:.2%}[/]")
    cleared = sum(CLEARED in r.reasons for r in records)
    if cleared:  # accepted, but only after the second look (policy.second_look_reviews)
        table.add_row("accepted after a second look", str(cleared), f"{cleared / n:.2%}")
    ordinary = [r for r in records if r.ordinary]
    if ordinary:
        false = sum(r.refused for r in ordinary)
        table.add_row(
            "false refusals (expected accept)", str(false), f"{false / len(ordinary):.2%}"
        )
    to_refuse = [r for r in records if r.expected in ("review", "reject")]
    if to_refuse:
        missed = sum(r.decision == "accept" for r in to_refuse)
        table.add_row("missed (expected refused)", str(missed), f"{missed / len(to_refuse):.2%}")
    return table


def _name(r: Record, root: Path) -> str:
    return str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path)


def _cleared(records: list[Record], root: Path) -> Table:
    """The files a single-label review would have held, accepted by the second look:
    an admin who turns `policy.second_look_reviews` off sees exactly these as reviews."""
    table = Table(title="accepted after a second look (policy.second_look_reviews)")
    table.add_column("file")
    table.add_column("first look")
    for r in records:
        first = [
            f"{label} {score:.2f}" for code, label, score in r.label_reasons if code == CLEARED
        ]
        table.add_row(_name(r, root), "; ".join(first))
    return table


def _refusals(records: list[Record], root: Path) -> Table:
    table = Table(title="refusals and the labels behind them")
    table.add_column("file")
    table.add_column("decision")
    table.add_column("why")
    per_label: Counter[str] = Counter()
    for r in records:
        why = [f"{label} {score:.2f} ({code})" for code, label, score in r.label_reasons]
        per_label.update(label for _, label, _ in r.label_reasons)
        if not why:
            why = list(r.reasons)
        table.add_row(_name(r, root), r.decision, "; ".join(why))
    for label, n in per_label.most_common():
        table.add_row(f"[dim]  {label}[/dim]", "", f"[dim]{n} file(s)[/dim]")
    return table


def _thresholds(
    group: str, rows: dict[str, list[float]], configured: Mapping[str, object]
) -> Table:
    what = (
        "false-refusal rate by threshold (files expected to pass)"
        if group == "ordinary"
        else "detection rate by threshold (files expected to be refused)"
    )
    table = Table(title=what, title_justify="left", min_width=len(what))
    table.add_column("threshold", justify="right")
    labels = [label for label, rates in rows.items() if any(rates) or label in configured]
    for label in labels:
        table.add_column(label, justify="right")
    for i, t in enumerate(THRESHOLDS):
        cells = []
        for label in labels:
            rule = configured.get(label)
            mark = ""
            if rule is not None and getattr(rule, "reject", None) == t:
                mark = " [red]R[/]"
            elif rule is not None and getattr(rule, "review", None) == t:
                mark = " [yellow]r[/]"
            cells.append(f"{rows[label][i]:.1%}{mark}")
        table.add_row(f"{t:.2f}", *cells)
    table.caption = (
        "R/r: the configured reject/review threshold; first-view scores (before the second look)"
    )
    return table
