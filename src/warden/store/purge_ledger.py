"""The purge ledger: checkpoint and audit trail of `warden purge federated`, in one file.

A small SQLite file in the data folder (not the main database, so a purge can
run from an admin's shell against a production instance without touching the
service's schema). Each alias moves planned -> pending -> done|failed|skipped,
each step committed before the next network call, so a run killed at any point
resumes without purging anything twice or skipping anything:
a `pending` alias is checked with pict-rs before it is purged again.
The rows are also the audit record: alias, where Lemmy referenced it, result,
time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from warden.store.database import private_sqlite_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS purge (
    alias TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'pending', 'done', 'failed', 'skipped')),
    detail TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS purge_state ON purge (state);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PurgeLedger:
    def __init__(self, path: Path) -> None:
        private_sqlite_file(path)  # 0600 in a 0700 folder, like the main database
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def replan(self, items: Iterable[tuple[str, str]]) -> tuple[int, int]:
        """Make the planned rows exactly this plan: add new (alias, source) pairs and drop
        planned rows no longer in it (never acted on, so nothing is lost); pending, done,
        failed and skipped rows stay. Returns (new, dropped)."""
        before = self.count()
        with self._db:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS current_plan (alias TEXT PRIMARY KEY)"
            )
            self._db.execute("DELETE FROM current_plan")
            rows = list(items)
            self._db.executemany(
                "INSERT OR IGNORE INTO current_plan (alias) VALUES (?)", ((a,) for a, _ in rows)
            )
            dropped = self._db.execute(
                "DELETE FROM purge WHERE state = 'planned'"
                " AND alias NOT IN (SELECT alias FROM current_plan)"
            ).rowcount
            self._db.executemany(
                "INSERT OR IGNORE INTO purge (alias, source, state, updated_at) VALUES (?, ?, 'planned', ?)",
                ((alias, source, _now()) for alias, source in rows),
            )
        return self.count() - before + int(dropped), int(dropped)

    def count(self, state: str | None = None) -> int:
        if state is None:
            row = self._db.execute("SELECT count(*) FROM purge").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM purge WHERE state = ?", (state,)
            ).fetchone()
        return int(row[0])

    def todo(self) -> Iterator[tuple[str, str]]:
        """(alias, state) still to handle: interrupted ones first, then planned, in order."""
        rows = self._db.execute(
            "SELECT alias, state FROM purge WHERE state IN ('pending', 'planned') "
            "ORDER BY state = 'planned', alias"
        ).fetchall()
        yield from ((str(a), str(s)) for a, s in rows)

    def mark(self, alias: str, state: str, detail: str | None = None) -> None:
        self._db.execute(
            "UPDATE purge SET state = ?, detail = ?, updated_at = ? WHERE alias = ?",
            (state, detail, _now(), alias),
        )

    def retry_failed(self) -> int:
        """Put failed aliases back in the plan; returns how many."""
        cur = self._db.execute(
            "UPDATE purge SET state = 'planned', updated_at = ? WHERE state = 'failed'", (_now(),)
        )
        return int(cur.rowcount)

    def summary(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, count(*) FROM purge GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in rows}

    def sample(self, n: int = 10) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT alias, source FROM purge WHERE state = 'planned' ORDER BY alias LIMIT ?", (n,)
        ).fetchall()
        return [(str(a), str(s)) for a, s in rows]
