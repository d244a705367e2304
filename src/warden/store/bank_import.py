"""Adding hashes to a bank in bulk: the set-based merge behind `BankStore.add`.

Issue 16: one ORM object per row imported 1 M hashes in 193 s. Here a chunk of
rows is validated in one pass, staged in a temporary table (PostgreSQL: COPY;
SQLite: one executemany) and merged by set statements: one INSERT that the
unique index on (bank_id, value) keeps from duplicating what is there (no
separate lookup pass, rows in index order so B-tree inserts stay local), and,
only in banks that ever removed an entry, one UPDATE that brings removed
entries back (with their `add` events, which the bank followers replay). A
value repeated inside a chunk is kept once, with its last line's provenance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, text

from warden.domain.signals import SignalType
from warden.store.base import UTCDateTime, utcnow

Row = tuple[int, str, str, str, str]  # (line order, value, source, added_by, reason)

IMPORT_CHUNK = 100_000  # rows per import transaction
SQLITE_IMPORT_CACHE_KIB = 256 * 1024

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


def merge(conn: Connection, bank_id: int, rows: list[Row], result: AddResult) -> None:
    """Merge one chunk into a bank inside the caller's transaction; counts into `result`."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # an import can be run again: do not wait for the WAL flush at each commit
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text(_STAGE_PG))
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(_COPY_PG) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        # a big page cache for this transaction: the two indexes on `value` take random
        # inserts (SQLite's default 2 MB cache thrashes past ~1 M rows)
        conn.execute(text(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}"))
        conn.execute(text("PRAGMA temp_store = MEMORY"))
        conn.execute(text(_STAGE_SQLITE))
        conn.execute(text("DELETE FROM temp.warden_stage"))
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(_FILL_SQLITE, rows)
        finally:
            cursor.close()
    params = {"bank": bank_id}
    revived: list[int] = []
    if conn.execute(text(_EVER_REMOVED), params).first() is not None:
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
    result.existing += len(rows) - added - len(revived)  # one row per value (`rows`)
