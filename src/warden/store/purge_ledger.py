"""The purge ledger: checkpoint and audit trail of `warden purge federated`, in one file.

A small SQLite file in the data folder (see `LedgerFile`). Each alias moves
through the states of `warden.domain.purge.PurgeState` (planned -> pending ->
purged | gone | failed, or skipped), each step committed before the next
network call, so a run killed at any point resumes without purging anything
twice or skipping anything: a `pending` alias is checked with pict-rs before
it is purged again. The rows are also the audit record: alias, where Lemmy
referenced it, result, time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from warden.domain.purge import PurgeState
from warden.store.ledger_file import LedgerFile, now_text

#: Step 1, as the ledger was before its steps were numbered (`IF NOT EXISTS`: such a
#: file holds it already, at version 0). Its states: a purge or a pict-rs "already
#: gone" were both `done`, told apart only by the detail.
_FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS purge (
    alias TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'pending', 'done', 'failed', 'skipped')),
    detail TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS purge_state ON purge (state);
"""

#: Step 2: the purge states shared with the rescan ledger; `done` becomes `purged`, or
#: `gone` where pict-rs no longer had the file. SQLite cannot change a CHECK in place,
#: so the table is copied.
_ONE_SET_OF_STATES = """
CREATE TABLE purge_states (
    alias TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('planned', 'pending', 'purged', 'gone', 'skipped', 'failed')),
    detail TEXT,
    updated_at TEXT NOT NULL
);
INSERT INTO purge_states (alias, source, state, detail, updated_at)
SELECT alias, source,
       CASE WHEN state = 'done' AND detail = 'already gone' THEN 'gone'
            WHEN state = 'done' THEN 'purged'
            ELSE state END,
       detail, updated_at
FROM purge;
DROP TABLE purge;
ALTER TABLE purge_states RENAME TO purge;
CREATE INDEX purge_state ON purge (state);
"""


class PurgeLedger(LedgerFile):
    steps = (_FIRST_SCHEMA, _ONE_SET_OF_STATES)

    def replan(self, items: Iterable[tuple[str, str]]) -> tuple[int, int]:
        """Make the planned rows exactly this plan: add new (alias, source) pairs and drop
        planned rows no longer in it (never acted on, so nothing is lost); pending, purged,
        gone, failed and skipped rows stay. Returns (new, dropped)."""
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
                ((alias, source, now_text()) for alias, source in rows),
            )
        return self.count() - before + int(dropped), int(dropped)

    def count(self, state: str | None = None) -> int:
        if state is None:
            row = self._db.execute("SELECT count(*) FROM purge").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM purge WHERE state = ?", (str(state),)
            ).fetchone()
        return int(row[0])

    def todo(self) -> Iterator[tuple[str, str]]:
        """(alias, state) still to handle: interrupted ones first, then planned, in order."""
        rows = self._db.execute(
            "SELECT alias, state FROM purge WHERE state IN ('pending', 'planned') "
            "ORDER BY state = 'planned', alias"
        ).fetchall()
        yield from ((str(a), str(s)) for a, s in rows)

    def mark_purge(self, alias: str, state: PurgeState, detail: str | None = None) -> None:
        self._db.execute(
            "UPDATE purge SET state = ?, detail = ?, updated_at = ? WHERE alias = ?",
            (state.value, detail, now_text(), alias),
        )

    def retry_failed(self) -> int:
        """Put failed aliases back in the plan; returns how many."""
        cur = self._db.execute(
            "UPDATE purge SET state = 'planned', updated_at = ? WHERE state = 'failed'",
            (now_text(),),
        )
        return int(cur.rowcount)

    def summary(self) -> dict[str, int]:
        return self._tally("SELECT state, count(*) FROM purge GROUP BY state")

    def sample(self, n: int = 10) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT alias, source FROM purge WHERE state = 'planned' ORDER BY alias LIMIT ?", (n,)
        ).fetchall()
        return [(str(a), str(s)) for a, s in rows]
