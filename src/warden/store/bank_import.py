"""Adding hashes to a bank in bulk: the set-based merge behind `BankStore.add`.

Issue 16: one ORM object per row imported 1 M hashes in 193 s. Here a chunk of
rows is validated in one pass, staged in a temporary table (PostgreSQL: COPY;
SQLite: one executemany) and merged by set statements: one INSERT that the
unique index on (bank_id, value) keeps from duplicating what is there (no
separate lookup pass, rows in index order so B-tree inserts stay local), and,
only in banks that ever removed an entry, one UPDATE that brings removed
entries back (with their `add` events, which the bank followers replay). A
value repeated inside a chunk is kept once, with its last line's provenance.

On SQLite, a bank that never removed an entry (the usual import) skips the
staging table: the sorted rows go straight in by one executemany (`INSERT OR
IGNORE`). `BankStore.add_many` feeds a parsed list without a NewEntry per line
(`value_rows`). With these and migration 0008 (no second index on `value`), a
1 M-line `warden hashes import` runs at ~120,000 lines/s on SQLite (bench/hash_match.py).

On PostgreSQL the same case skips staging too (`_copy_direct`): the server's
INSERT ... SELECT ... ON CONFLICT was most of an import's cost. When a sample of
the chunk's values is absent from the bank, the rows, sorted by value, are copied
(binary COPY) straight into hash_entries inside a savepoint; should any value be
there after all (the sample missed it, or a concurrent import added it) the unique
index refuses the COPY, the savepoint is rolled back and the chunk takes the staged
merge. Same entries, counts and events either way (new entries need no event: the
followers see them by id). A 1 M-line import: ~106,000 lines/s, was ~93,000.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import itemgetter

from sqlalchemy import Connection, bindparam, text

from warden.domain.signals import SignalType
from warden.store.base import UTCDateTime, utcnow

Row = tuple[int, str, str, str, str]  # (line order, value, source, added_by, reason)

_HEX = re.compile(r"[0-9a-f]+")  # canonical hex (domain/signals.py), for the fast check
IMPORT_CHUNK = 250_000  # rows per import transaction (bigger: fewer index pages rewritten)
SQLITE_IMPORT_CACHE_KIB = 256 * 1024
PG_IMPORT_WORK_MEM_MB = 256
PROBE_SAMPLE = 1024  # values of a chunk looked up before copying it straight into the table
_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a duplicate key

# The import's staging table: one per connection (SQLite keeps it, emptied per chunk;
# PostgreSQL's is dropped with the transaction). `seq` keeps the file's order.
_STAGE_SQLITE = (
    "CREATE TEMP TABLE IF NOT EXISTS warden_stage (seq INTEGER NOT NULL,"
    " value VARCHAR(64) NOT NULL, source TEXT, added_by TEXT, reason TEXT)"
)
_FILL_SQLITE = "INSERT INTO temp.warden_stage VALUES (?, ?, ?, ?, ?)"
_STAGE_PG = (
    "CREATE TEMP TABLE warden_stage (seq INTEGER NOT NULL, value VARCHAR(64) NOT NULL,"
    " source TEXT, added_by TEXT, reason TEXT) ON COMMIT DROP"
)
_COPY_PG = "COPY warden_stage (seq, value, source, added_by, reason) FROM STDIN"
# New rows in one pass: the unique index on (bank_id, value) refuses what is there
# already (no separate lookup pass).
_INSERT_SQLITE = (
    "INSERT OR IGNORE INTO hash_entries (bank_id, value, source, added_by, reason, created_at)"
    " SELECT :bank, st.value, st.source, st.added_by, st.reason, :now FROM warden_stage st"
    " ORDER BY st.value"  # in index order: the B-tree inserts stay local
)
_INSERT_PG = (
    "INSERT INTO hash_entries (bank_id, value, source, added_by, reason, created_at)"
    " SELECT :bank, st.value, st.source, st.added_by, st.reason, :now FROM warden_stage st"
    " ORDER BY st.value ON CONFLICT (bank_id, value) DO NOTHING"
)
# The direct path (a bank that never removed an entry): is any sampled value there?
_PROBE_PG = "SELECT 1 FROM hash_entries WHERE bank_id = :bank AND value = ANY(:values) LIMIT 1"
_COPY_DIRECT_PG = (
    "COPY hash_entries (bank_id, value, source, added_by, reason, created_at) FROM STDIN"
)
# COPY's text format: a backslash, tab, newline or carriage return in a field is escaped
_VALUE, _PROVENANCE = itemgetter(1), itemgetter(2, 3, 4)  # of a Row
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_DIRECT_SQLITE = (
    "INSERT OR IGNORE INTO hash_entries (bank_id, value, source, added_by, reason, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# The entries the chunk names: only asked for when ids are wanted (small adds).
_KNOWN = (
    "SELECT DISTINCT e.id FROM hash_entries e JOIN warden_stage st ON st.value = e.value"
    " WHERE e.bank_id = :bank"
)
# Removed entries the chunk brings back: only asked for when the bank ever removed any.
_EVER_REMOVED = "SELECT 1 FROM hash_events WHERE bank_id = :bank AND op = 'remove' LIMIT 1"
_EVENT = (
    "INSERT INTO hash_events (bank_id, entry_id, op, created_at) VALUES (:bank, :id, 'add', :now)"
)
_REVIVE = (
    "UPDATE hash_entries SET removed_at = NULL, removed_by = NULL, removed_reason = NULL"
    " WHERE bank_id = :bank AND removed_at IS NOT NULL"
    " AND value IN (SELECT value FROM warden_stage) RETURNING id"
)


@dataclass(frozen=True)
class NewEntry:
    """A hash to add, with its provenance."""

    value: str
    source: str = ""
    added_by: str = ""
    reason: str = ""


@dataclass
class AddResult:
    added: int = 0
    reactivated: int = 0
    existing: int = 0
    keep_ids: bool = False  # collect entry_ids (small adds, e.g. `warden flag`)
    entry_ids: list[int] = field(default_factory=list)

    def note(self, ids: Iterable[int]) -> None:
        if self.keep_ids:
            self.entry_ids.extend(ids)


def rows(signal: SignalType, chunk: list[NewEntry]) -> list[Row]:
    """Staging rows for a chunk: values validated in one pass (BadHash names the bad
    one), a value repeated within the chunk kept once with its last provenance (repeats
    across chunks and rows already in the table are the SQL's business)."""
    values = signal.normalise_many([e.value for e in chunk])
    last = {value: k for k, value in enumerate(values)}
    return [
        (k, value, chunk[k].source[:255], chunk[k].added_by[:255], chunk[k].reason[:1000])
        for value, k in last.items()
    ]


def value_rows(
    signal: SignalType, values: list[str], reasons: list[str], source: str, added_by: str
) -> tuple[Iterable[Row], int]:
    """`rows` for an import, and how many, without a NewEntry per line: one source and author for
    every value, a reason each. Values already canonical (what a parsed hash list
    holds) are checked by one pattern over the batch and kept as they are; others
    go through the registry's `normalise_many`."""
    digits = signal.hex_digits
    if not (set(map(len, values)) <= {digits} and _HEX.fullmatch("".join(values) or "0")):
        values = signal.normalise_many(values)
    source, added_by = source[:255], added_by[:255]
    if len(set(values)) == len(values):  # no repeats: rows straight from the lists
        if max(map(len, reasons), default=0) > 1000:
            reasons = [r[:1000] for r in reasons]
        rows = zip(count(), values, repeat(source), repeat(added_by), reasons, strict=False)
        return rows, len(values)
    last = {value: k for k, value in enumerate(values)}
    return [(k, value, source, added_by, reasons[k][:1000]) for value, k in last.items()], len(last)


def merge(
    conn: Connection, bank_id: int, rows: Iterable[Row], result: AddResult, *, size: int
) -> None:
    """Merge one chunk of `size` distinct values into a bank inside the caller's
    transaction; counts into `result`."""
    postgres = conn.dialect.name == "postgresql"
    params = {"bank": bank_id}
    ever_removed = conn.execute(text(_EVER_REMOVED), params).first() is not None
    if not (postgres or ever_removed or result.keep_ids):
        added = _insert_sqlite(conn, bank_id, rows)
        result.added += added
        result.existing += size - added
        return
    if postgres:
        # an import can be run again: do not wait for the WAL flush at each commit
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        if not (ever_removed or result.keep_ids):
            rows = sorted(rows, key=itemgetter(1))  # index order: the B-tree inserts stay local
            if _copy_direct(conn, bank_id, rows):
                result.added += size
                return
        # the merge sorts a chunk by value: in memory, not in temporary files (4 MB default)
        conn.execute(text(f"SET LOCAL work_mem = '{PG_IMPORT_WORK_MEM_MB}MB'"))
        conn.execute(text(_STAGE_PG))
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(_COPY_PG) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        # a big page cache for this transaction: the unique index on (bank_id, value)
        # takes random inserts (SQLite's default 2 MB cache thrashes past ~1 M rows)
        conn.execute(text(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}"))
        conn.execute(text("PRAGMA temp_store = MEMORY"))
        conn.execute(text(_STAGE_SQLITE))
        conn.execute(text("DELETE FROM temp.warden_stage"))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(_FILL_SQLITE, rows)
        finally:
            cursor.close()
    revived: list[int] = []
    if ever_removed:
        revived = [int(i) for (i,) in conn.execute(text(_REVIVE), params)]
    now = utcnow()
    if revived:
        event = text(_EVENT).bindparams(bindparam("now", type_=UTCDateTime()))
        conn.execute(event, [{"bank": bank_id, "id": i, "now": now} for i in revived])
    insert = text(_INSERT_PG if postgres else _INSERT_SQLITE).bindparams(
        bindparam("now", type_=UTCDateTime())
    )
    added = conn.execute(insert, params | {"now": now}).rowcount
    if result.keep_ids:  # every entry the chunk names, new or not
        result.note(int(i) for (i,) in conn.execute(text(_KNOWN), params))
    if postgres:
        conn.execute(text("DROP TABLE warden_stage"))
    else:
        conn.execute(text("PRAGMA cache_size = -2000"))  # SQLite's default again
    result.added += added
    result.reactivated += len(revived)
    result.existing += size - added - len(revived)  # one row per value (`rows`)


def _insert_sqlite(conn: Connection, bank_id: int, rows: Iterable[Row]) -> int:
    """The common SQLite case (a bank that never removed an entry, no ids wanted): the
    rows, sorted by value, inserted straight into the table by one executemany that
    the unique index keeps from duplicating; the number added. Staging first and
    merging by INSERT ... SELECT cost a second pass (and a sort in SQL) for nothing."""
    stamp_of = UTCDateTime().bind_processor(conn.dialect)
    now = utcnow()
    stamp = stamp_of(now) if stamp_of is not None else now
    ordered = sorted(rows, key=itemgetter(1))  # index order: the B-tree inserts stay local
    conn.execute(text(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}"))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            _DIRECT_SQLITE, ((bank_id, v, src, by, why, stamp) for _, v, src, by, why in ordered)
        )
        added = int(cursor.rowcount)
    finally:
        cursor.close()
    conn.execute(text("PRAGMA cache_size = -2000"))  # SQLite's default again
    return added


def _copy_direct(conn: Connection, bank_id: int, ordered: list[Row]) -> bool:
    """PostgreSQL, a bank that never removed an entry, no ids wanted: copy the rows
    (distinct values, sorted) straight into hash_entries when a sample of them is not
    in the bank; whether it was done. A value there after all makes the unique index
    refuse the COPY: the savepoint is rolled back (nothing of the chunk stays) and the
    caller merges through the staging table. Staging then INSERT ... SELECT ... ON
    CONFLICT cost the server ~8.5 s per million rows; this ~6 s (bench/hash_match.py)."""
    if not ordered:
        return True
    step = max(1, len(ordered) // PROBE_SAMPLE)
    sample = [row[1] for row in ordered[::step]] + [ordered[-1][1]]
    if conn.execute(text(_PROBE_PG), {"bank": bank_id, "values": sample}).first() is not None:
        return False  # a re-import or an overlapping list: the staged merge sorts it out
    data = _copy_text(bank_id, ordered).encode()
    raw = conn.connection.driver_connection
    assert raw is not None
    savepoint = conn.begin_nested()
    try:
        with raw.cursor() as cur, cur.copy(_COPY_DIRECT_PG) as copy:
            copy.write(data)
    except Exception as exc:  # psycopg is not imported here: its error named by SQLSTATE
        savepoint.rollback()
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        return False
    savepoint.commit()
    return True


def _copy_text(bank_id: int, ordered: list[Row]) -> str:
    """The rows as COPY text, one line each. One provenance for the chunk (a plain
    hash list: one source, author and reason) makes it one `str.join` of the values;
    otherwise one f-string a row. Either costs less client CPU than psycopg's
    `write_row` a row. A backslash, tab or line break in a field is escaped."""
    head, tail = f"{bank_id}\t", f"\t{utcnow().isoformat()}\n"
    shared = set(map(_PROVENANCE, ordered))
    if len(shared) == 1:  # the values are canonical hex: nothing in them to escape
        ((s, b, r),) = shared
        end = f"\t{s.translate(_COPY_ESCAPES)}\t{b.translate(_COPY_ESCAPES)}"
        end += f"\t{r.translate(_COPY_ESCAPES)}{tail}"
        return head + (end + head).join(map(_VALUE, ordered)) + end
    data = "".join(f"{head}{v}\t{s}\t{b}\t{r}{tail}" for _, v, s, b, r in ordered)
    lines = len(ordered)
    tabs, breaks = data.count("\t"), data.count("\n")
    if (tabs, breaks) == (5 * lines, lines) and "\\" not in data and "\r" not in data:
        return data
    e = _COPY_ESCAPES
    return "".join(
        f"{head}{v}\t{s.translate(e)}\t{b.translate(e)}\t{r.translate(e)}{tail}"
        for _, v, s, b, r in ordered
    )
