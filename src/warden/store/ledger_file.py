"""The base of Warden's ledger files: small SQLite files with numbered schema steps.

The purge and rescan ledgers are files in the data folder, not tables of the
main database, so a job can run from an admin's shell against a production
instance without touching the service's schema (and without Alembic). Each
file carries its schema version in SQLite's own `PRAGMA user_version`; a
subclass lists its `steps`, and step N (1-based) takes a file from version
N-1 to N inside one transaction together with the version bump, so a file is
always at a numbered step, never between two, even when the process dies
mid-upgrade. Steps are frozen once released: a change is a new step at the
end. A file at a version this Warden does not know was written by a newer
Warden and is refused (`LedgerFileError`) rather than written by older code.

Files written before the steps were numbered carry version 0 yet may hold
part of the schema already: the first steps of each ledger accept that
(`IF NOT EXISTS`, `add_missing_columns`); every later step is plain SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from warden.errors import LedgerFileError
from warden.store.database import private_sqlite_file

#: One schema step: an SQL script, or a function given the connection inside the
#: step's transaction (it must use `execute`, never `executescript`, which commits).
Step = str | Callable[[sqlite3.Connection], None]


def now_text() -> str:
    """The time a ledger row records, in UTC, readable by people and sortable as text."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, split where SQLite itself says one is complete
    (a `;` inside a string, comment or trigger body does not end one)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                yield buffer
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise LedgerFileError(f"incomplete SQL statement in a schema step: {buffer[:80]!r}")


def add_missing_columns(
    db: sqlite3.Connection, table: str, columns: Mapping[str, str]
) -> list[str]:
    """Add the columns `table` lacks; for the one step that must accept files written
    before the steps were numbered, which hold any prefix of these columns."""
    present = {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
    added = [name for name in columns if name not in present]
    for name in added:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {columns[name]}")
    return added


class LedgerFile:
    """An open ledger file, brought up to the newest step of `steps` when opened.

    Writes commit one statement at a time (autocommit), fsynced (`synchronous=FULL`)
    into a WAL, so a row a job has written survives a crash of the job or the machine.
    """

    #: The schema, as numbered steps: `steps[0]` is step 1.
    steps: ClassVar[tuple[Step, ...]] = ()

    def __init__(self, path: Path) -> None:
        private_sqlite_file(path)  # 0600 in a 0700 folder, like the main database
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._upgrade()
        except BaseException:
            self._db.close()
            raise

    @property
    def version(self) -> int:
        """The schema step this file is at (0: new, or written before steps were numbered)."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def _upgrade(self) -> None:
        newest = len(self.steps)
        for number in range(self._known_version() + 1, newest + 1):
            self._db.execute("BEGIN IMMEDIATE")  # one writer: a twin process waits here
            try:
                if self._known_version() < number:  # not done by that twin meanwhile
                    step = self.steps[number - 1]
                    if isinstance(step, str):
                        for statement in statements(step):
                            self._db.execute(statement)
                    else:
                        step(self._db)
                    self._db.execute(f"PRAGMA user_version = {number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _known_version(self) -> int:
        version = self.version
        if version > len(self.steps):
            raise LedgerFileError(
                f"{self.path} is at schema step {version}, written by a newer Warden; this one"
                f" knows {len(self.steps)} steps (upgrade Warden, or move the file aside)"
            )
        return version

    def _tally(self, query: str, params: tuple[Any, ...] = ()) -> dict[str, int]:
        """Rows of (name, count) as a dict: the summaries of a ledger."""
        return {str(name): int(n) for name, n in self._db.execute(query, params).fetchall()}
