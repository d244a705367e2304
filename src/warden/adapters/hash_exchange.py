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

`read` yields one `HashLine` per line; `read_batches`, what `warden hashes import`
uses, yields the same lines grouped by bank, many thousands at a time (issue 16:
per-line Python work held imports under 70,000 lines/s). A batch of plain
`<type> <hex>` lines is read by one regular expression over the batch's text and
validated by the registry in one pass per type; a batch with anything else
(comments, blank or bare lines, other types, errors) is read line by line by the
same code as `read`, so both give the same lines and the same errors
(tests/cli/test_hashes_cli.py compares them).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from warden.domain.banks import BankEntry, BankKind, normalise_hash
from warden.domain.signals import EXCHANGE_NAMES, signal_type
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
class HashGroup:
    """Consecutive hashes of one batch bound for one bank (None: the command's
    `--bank`), values canonical, notes beside them, in file order."""

    bank: str | None
    line: int  # the first line of the group, for "names no bank"
    kind: BankKind  # what the lines say they are (a bank takes only its own kind)
    values: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


BATCH_LINES = 50_000  # lines read per batch
# `<type> <hex>` with one space, nothing else on the line (lower-cased first): the
# form every ThreatExchange tool writes; anything else takes the line-by-line path
_TE_PLAIN = re.compile(r"^([a-z0-9_]+) ([0-9a-f]+)[ \t\r]*$", re.MULTILINE)


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
        yield from _read_te(_te_lines(stream), kind, stats or ReadStats())
    else:
        raise HashFileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_batches(
    stream: TextIO,
    fmt: str,
    *,
    kind: BankKind | None = None,
    stats: ReadStats | None = None,
    size: int = BATCH_LINES,
) -> Iterator[list[HashGroup]]:
    """What `read` reads, in batches of about `size` lines grouped by bank. On a bad
    line the lines before it come as a last batch, then the HashFileError."""
    stats = stats if stats is not None else ReadStats()
    if fmt == "te":
        for start, lines in _te_chunks(stream, size):
            fast = _te_plain(start, lines)
            if fast is None:
                yield from _grouped(_read_te(enumerate(lines, start), kind, stats))
            else:
                yield fast
    else:  # csv rows may span lines (quotes): csv's own reader, in batches of lines
        yield from _grouped(read(stream, fmt, kind=kind, stats=stats), size)


def _te_chunks(stream: TextIO, size: int) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, up to `size` lines); not UTF-8 is a HashFileError."""
    start = 1
    lines: list[str] = []
    try:
        for raw in stream:
            lines.append(raw)
            if len(lines) >= size:
                yield start, lines
                start, lines = start + len(lines), []
    except UnicodeDecodeError as exc:
        if lines:  # the lines before the bad one are kept, as `read` keeps them
            yield start, lines
        raise _not_utf8(start + len(lines), exc) from None
    if lines:
        yield start, lines


def _te_plain(start: int, lines: list[str]) -> list[HashGroup] | None:
    """A batch where every line is `<type> <hex>` of a type Warden matches and every
    hash is valid, as one group; None sends the batch down the line-by-line path."""
    text = "".join(lines)
    if not text.isascii():  # ASCII only: lower() and the pattern's classes mean what `read` does
        return None
    pairs = _TE_PLAIN.findall(text.lower())
    if len(pairs) != len(lines):  # a line that is not plain (at most one match a line)
        return None
    names = {name for name, _ in pairs}
    if len(names) != 1 or not names <= TE_TYPES.keys():  # mixed kinds: line by line
        return None
    values = [value for _, value in pairs]
    # the pattern checked the digits; each type's length is the registry's
    for name in names:
        digits = signal_type(TE_TYPES[name].value).hex_digits
        lengths = set(map(len, values if len(names) == 1 else (v for n, v in pairs if n == name)))
        if lengths != {digits}:
            return None  # the line-by-line path names the bad line
    [name] = names
    return [HashGroup(None, start, TE_TYPES[name], values, [""] * len(values))]


def _grouped(lines: Iterable[HashLine], size: int | None = None) -> Iterator[list[HashGroup]]:
    """HashLines gathered into batches by bank (one batch, or one per `size` lines);
    an error comes after the batch of the lines before it."""
    groups: dict[tuple[str | None, BankKind], HashGroup] = {}
    count = 0
    try:
        for line in lines:
            group = groups.get((line.bank, line.kind))
            if group is None:
                group = groups[line.bank, line.kind] = HashGroup(line.bank, line.line, line.kind)
            group.values.append(line.value)
            group.notes.append(line.note)
            count += 1
            if size is not None and count >= size:
                yield list(groups.values())
                groups, count = {}, 0
    except HashFileError:
        if groups:
            yield list(groups.values())
        raise
    if groups:
        yield list(groups.values())


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


def _read_te(
    lines: Iterable[tuple[int, str]], kind: BankKind | None, stats: ReadStats
) -> Iterator[HashLine]:
    for number, raw in lines:
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
