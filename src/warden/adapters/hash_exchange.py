"""Hash-list files other tools exchange, read and written line by line.

Two formats:

- `csv`: Warden's own, with a header `hash,kind,bank,note` (kind `pdq` or
  `sha256`; bank and note may be empty, the bank then comes from the command).
- `te`: the signal file of Meta's ThreatExchange tooling — one signal per line,
  `<signal_type> <signal>` (e.g. `pdq 358c86641a5269ab...`), which is what
  python-threatexchange's local-file exchange (`LocalFileSignalExchangeAPI`)
  reads and `report_opinion` appends, and what `threatexchange hash photo`
  prints. A line may also be a bare signal when the caller names the kind
  (the exchange's `signal_type` option). Signal types Warden cannot match
  (`video_md5`, `url`, `raw_text`, ...) are counted and skipped, never guessed.

Parsing is streaming (10-million-line lists) and strict: a malformed line is
an error naming its line number, not a silent skip.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from warden.domain.banks import BankEntry, BankKind, normalise_hash
from warden.domain.signals import EXCHANGE_NAMES
from warden.errors import HashFileError

FORMATS = ("csv", "te")
CSV_HEADER = ["hash", "kind", "bank", "note"]
#: ThreatExchange signal type names -> Warden's kinds (from the registry, domain/signals.py)
TE_TYPES = {name: BankKind(signal.name) for name, signal in EXCHANGE_NAMES.items()}


@dataclass(frozen=True)
class HashLine:
    value: str
    kind: BankKind
    bank: str | None
    note: str
    line: int


@dataclass
class ReadStats:
    """What a read skipped: signal types Warden does not match, by name."""

    skipped: Counter[str] = field(default_factory=Counter)


def read(
    stream: TextIO, fmt: str, *, kind: BankKind | None = None, stats: ReadStats | None = None
) -> Iterator[HashLine]:
    """Hash lines of a `csv` or `te` file; HashFileError names the first bad line."""
    if fmt == "csv":
        yield from _read_csv(stream)
    elif fmt == "te":
        yield from _read_te(stream, kind, stats or ReadStats())
    else:
        raise HashFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _csv_rows(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(the line a row starts on, the row); a row csv cannot read is a HashFileError.

    csv.Error (a field over `csv.field_size_limit()`, 131,072 characters) is not a
    ValueError, and a stream that is not UTF-8 fails while csv reads it.
    """
    rows = csv.reader(stream)
    while True:
        start = rows.line_num + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise HashFileError(f"line {start}: not readable as CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise _not_utf8(start, exc) from None
        yield start, row


def _read_csv(stream: TextIO) -> Iterator[HashLine]:
    rows = _csv_rows(stream)
    first = next(rows, None)
    if first is None:
        return
    header = first[1]
    if [h.strip().lower() for h in header][:2] != CSV_HEADER[:2]:
        raise HashFileError(
            f"line {first[0]}: expected the header {','.join(CSV_HEADER)}, got {header!r:.200}"
        )
    for number, row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise HashFileError(f"line {number}: expected hash,kind[,bank,note], got {row!r:.200}")
        try:
            k = BankKind(row[1].strip().lower())
        except ValueError:
            raise HashFileError(
                f"line {number}: kind must be pdq or sha256, got {row[1]!r:.80}"
            ) from None
        bank = row[2].strip() if len(row) > 2 and row[2].strip() else None
        note = row[3].strip() if len(row) > 3 else ""
        yield HashLine(_value(k, row[0], number), k, bank, note, number)


def _te_lines(stream: TextIO) -> Iterator[tuple[int, str]]:
    """(line number, line); a stream that is not UTF-8 is a HashFileError."""
    number = 0
    while True:
        number += 1
        try:
            raw = next(stream, None)
        except UnicodeDecodeError as exc:
            raise _not_utf8(number, exc) from None
        if raw is None:
            return
        yield number, raw


def _not_utf8(number: int, exc: UnicodeDecodeError) -> HashFileError:
    # a text stream decodes a block at a time, so the bad byte may lie a few lines further
    return HashFileError(f"line {number} or a little after: not UTF-8 text ({exc.reason})")


def _read_te(stream: TextIO, kind: BankKind | None, stats: ReadStats) -> Iterator[HashLine]:
    for number, raw in _te_lines(stream):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        signal_type, _, signal = text.partition(" ")
        if not signal:  # a bare signal: the caller named the type
            if kind is None:
                raise HashFileError(
                    f"line {number}: a bare hash; name its kind (--kind pdq|sha256) "
                    "or write '<signal_type> <hash>'"
                )
            yield HashLine(_value(kind, signal_type, number), kind, None, "", number)
            continue
        mapped = TE_TYPES.get(signal_type.lower())
        if mapped is None:
            stats.skipped[signal_type] += 1
            continue
        yield HashLine(_value(mapped, signal.strip(), number), mapped, None, "", number)


def _value(kind: BankKind, text: str, number: int) -> str:
    try:
        return normalise_hash(kind, text)
    except ValueError as exc:
        raise HashFileError(f"line {number}: {exc}") from None


def write(stream: TextIO, fmt: str, entries: Iterable[BankEntry]) -> int:
    """Write entries in `csv` or `te` format; the number written."""
    count = 0
    if fmt == "csv":
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(CSV_HEADER)
        for e in entries:
            out.writerow([e.value, e.kind.value, e.bank, e.reason])
            count += 1
    elif fmt == "te":
        for e in entries:
            stream.write(f"{e.kind.value} {e.value}\n")
            count += 1
    else:
        raise HashFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return count
