"""`warden scan`: stream files through the scanner with bounded memory.

Paths are walked lazily (`os.scandir`), files are read and scanned in small
batches by a fixed number of worker threads with a bounded window of work in
flight, and results are printed in input order as they complete. Each thread
decodes through the scanner's pool of as many decoder processes (memory, CPU
and wall-clock limits; a bomb kills only its worker). Memory stays constant
however many files a folder holds, and an unreadable or hostile file only ever
produces its own `reject` or `error` line.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from warden.config import Settings
from warden.domain.verdict import Decision, Verdict
from warden.media.pipeline import ScanContext, Scanner
from warden.services import build_scanner

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True)
class Outcome:
    """One file's line of output: a verdict, or why the file could not be read."""

    path: Path
    verdict: Verdict | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.verdict is None:
            return {
                "path": str(self.path),
                "sha256": None,
                "pdq": None,
                "pdq_quality": None,
                "decision": "error",
                "reasons": ["unreadable"],
                "messages": [self.error or "could not be read"],
                "labels": {},
            }
        return {"path": str(self.path), **self.verdict.as_dict()}

    @property
    def decision(self) -> str:
        return "error" if self.verdict is None else self.verdict.decision.value


def iter_files(paths: Iterable[Path], recursive: bool) -> Iterator[Path]:
    """Files named, and files inside folders named (sub-folders when recursive), lazily."""
    for path in paths:
        if path.is_dir():
            yield from _walk(path, recursive)
        else:
            yield path


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        yield folder  # reported as unreadable by the reader
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(Path(entry.path), recursive)
        elif entry.is_file():
            yield Path(entry.path)


def _scan_chunk(scanner: Scanner, chunk: list[Path]) -> list[Outcome]:
    readable: list[tuple[Path, bytes]] = []
    failed: dict[Path, str] = {}
    limit = scanner.limits.max_bytes
    for path in chunk:
        try:
            with path.open("rb") as handle:
                # read one byte past the limit so "too large" is still decided by the scanner
                readable.append((path, handle.read(limit + 1)))
        except OSError as exc:
            failed[path] = f"{exc.strerror or exc}"
    verdicts = scanner.scan_many(
        [(data, ScanContext(source="cli", filename=path.name)) for path, data in readable]
    )
    by_path = {p: v for (p, _), v in zip(readable, verdicts, strict=True)}
    return [Outcome(p, by_path.get(p), failed.get(p)) for p in chunk]


def scan_paths(
    scanner: Scanner, files: Iterable[Path], workers: int, chunk_size: int = 4
) -> Iterator[Outcome]:
    """Scan files with `workers` threads, at most 2 x workers chunks in flight."""
    window: deque[Future[list[Outcome]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="warden-scan") as pool:
        chunk: list[Path] = []
        for path in files:
            chunk.append(path)
            if len(chunk) == chunk_size:
                window.append(pool.submit(_scan_chunk, scanner, chunk))
                chunk = []
                while len(window) >= 2 * workers:
                    yield from window.popleft().result()
        if chunk:
            window.append(pool.submit(_scan_chunk, scanner, chunk))
        while window:
            yield from window.popleft().result()


def run_scan(
    settings: Settings, paths: list[Path], *, as_json: bool, recursive: bool, workers: int
) -> int:
    """Scan, print, and return the exit status (0 accepted, 1 refused/review, 2 unreadable)."""
    if settings.model.threads == 0:
        # one model thread per worker: parallel streams beat threads inside one call
        settings = settings.model_copy(deep=True)
        settings.model.threads = max(1, (os.cpu_count() or 1) // workers)
    scanner = build_scanner(settings, decode_workers=workers)
    try:
        return _print_scan(scanner, paths, as_json=as_json, recursive=recursive, workers=workers)
    finally:
        scanner.close()


def _print_scan(
    scanner: Scanner, paths: list[Path], *, as_json: bool, recursive: bool, workers: int
) -> int:
    console = Console(stderr=True)
    if scanner.classifier is None:
        console.print(
            f"[yellow]warning:[/yellow] {scanner._classifier_error}; every file will be refused"
        )
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    out = sys.stdout
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("scan", total=None, rate="")
        for n, outcome in enumerate(scan_paths(scanner, iter_files(paths, recursive), workers), 1):
            counts[outcome.decision] += 1
            row = outcome.as_dict()
            reasons.update(row["reasons"])
            if as_json:
                out.write(json.dumps(row, sort_keys=False) + "\n")
                out.flush()
            else:
                progress.console.print(_line(outcome, row))
            elapsed = progress.tasks[0].elapsed or 0.0
            progress.update(task, advance=1, rate=f"{n / elapsed:.1f} files/s" if elapsed else "")
    if not as_json:
        console.print(_summary(counts, reasons))
    if counts["error"]:
        return EXIT_UNREADABLE
    if counts[Decision.REJECT.value] or counts[Decision.REVIEW.value]:
        return EXIT_REFUSED
    return EXIT_ACCEPTED


_STYLE = {"accept": "green", "review": "yellow", "reject": "red", "error": "magenta"}


def _line(outcome: Outcome, row: dict[str, Any]) -> str:
    style = _STYLE[outcome.decision]
    why = "; ".join(row.get("messages") or [])
    return f"[{style}]{outcome.decision:7}[/{style}] {outcome.path}" + (
        f"  [dim]{why}[/dim]" if why else ""
    )


def _summary(counts: Counter[str], reasons: Counter[str]) -> Table:
    table = Table(title="warden scan")
    table.add_column("decision")
    table.add_column("files", justify="right")
    for decision in ("accept", "review", "reject", "error"):
        table.add_row(f"[{_STYLE[decision]}]{decision}[/]", str(counts[decision]))
    for code, n in reasons.most_common(8):
        table.add_row(f"[dim]  {code}[/dim]", str(n))
    return table
