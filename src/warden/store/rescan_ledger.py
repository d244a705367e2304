"""The rescan ledger: which stored objects were scanned, and with what result.

A SQLite file in the data folder (see `LedgerFile`), one row per store key,
committed as each result arrives: a rescan interrupted at any point resumes
where it stopped, and the rows are the report (decision, reasons, SHA-256, the
full verdict, the decision and evidence ids, and for `--purge` the alias and
what pict-rs did with it, in the states of `warden.domain.purge.PurgeState`;
no state yet: not purged).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from warden.domain.purge import PurgeState
from warden.store.ledger_file import LedgerFile, add_missing_columns, now_text

#: Step 1, as the first release wrote it (`IF NOT EXISTS`: older files hold it at version 0).
_FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS scanned (
    key TEXT PRIMARY KEY,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    sha256 TEXT,
    verdict TEXT,
    scanned_at TEXT NOT NULL
);
"""


def _decision_and_purge_columns(db: sqlite3.Connection) -> None:
    """Step 2: the columns later releases added before the steps were numbered; a file
    written by one of them holds some of them already."""
    add_missing_columns(
        db,
        "scanned",
        {
            "decision_id": "INTEGER",
            "evidence_id": "TEXT",
            "alias": "TEXT",
            "purge_state": "TEXT",
            "purge_detail": "TEXT",
            "purged_at": "TEXT",
        },
    )


#: Step 3: the rows `--purge` acts on, refused for a label or a hash match (the evidence codes).
_PURGEABLE_VIEW = """
CREATE VIEW IF NOT EXISTS purgeable AS
SELECT key, alias, purge_state FROM scanned
WHERE decision = 'reject'
  AND (reasons LIKE '%"label_reject"%' OR reasons LIKE '%"hash_match"%');
"""


class RescanLedger(LedgerFile):
    steps = (_FIRST_SCHEMA, _decision_and_purge_columns, _PURGEABLE_VIEW)

    def seen(self, key: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM scanned WHERE key = ?", (key,)).fetchone() is not None
        )

    def record(
        self, result: Any, *, decision_id: int | None = None, evidence_id: str | None = None
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO scanned (key, decision, reasons, sha256, verdict, scanned_at,"
            " decision_id, evidence_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                result.key,
                result.decision,
                json.dumps(list(result.reasons)),
                result.sha256,
                json.dumps(result.verdict.as_dict()) if result.verdict is not None else None,
                now_text(),
                decision_id,
                evidence_id,
            ),
        )

    def row(self, key: str) -> dict[str, Any] | None:
        cursor = self._db.execute("SELECT * FROM scanned WHERE key = ?", (key,))
        found = cursor.fetchone()
        if found is None:
            return None
        return dict(zip([d[0] for d in cursor.description], found, strict=True))

    def refused_unpurged(self) -> dict[str, str | None]:
        """Keys refused as known-bad (a label or a hash match; not mere decode failures,
        which may be media pict-rs handles and Warden does not, such as video) that are
        not yet purged, whose purge was interrupted or failed, with their alias when known."""
        rows = self._db.execute(  # never tried (NULL), interrupted (pending), or failed
            "SELECT key, alias FROM purgeable"
            " WHERE (purge_state IS NULL OR purge_state IN ('pending', 'failed')) ORDER BY key"
        )
        return {str(k): (str(a) if a else None) for k, a in rows}

    def set_alias(self, key: str, alias: str) -> None:
        self._db.execute("UPDATE scanned SET alias = ? WHERE key = ?", (alias, key))

    def purge_todo(self) -> list[tuple[str, str]]:
        """(key, alias) of the refused keys with an alias, still to purge."""
        rows = self._db.execute(
            "SELECT key, alias FROM purgeable WHERE alias IS NOT NULL"
            " AND (purge_state IS NULL OR purge_state IN ('pending', 'failed')) ORDER BY key"
        )
        return [(str(k), str(a)) for k, a in rows]

    def mark_purge(self, key: str, state: PurgeState, detail: str | None = None) -> None:
        self._db.execute(
            "UPDATE scanned SET purge_state = ?, purge_detail = ?, purged_at = ? WHERE key = ?",
            (state.value, detail, now_text(), key),
        )

    def purge_summary(self) -> dict[str, int]:
        return self._tally(
            "SELECT coalesce(purge_state, 'not purged'), count(*) FROM purgeable GROUP BY 1"
        )

    def decisions(self) -> dict[str, str]:
        return {str(k): str(d) for k, d in self._db.execute("SELECT key, decision FROM scanned")}

    def summary(self) -> dict[str, int]:
        return self._tally("SELECT decision, count(*) FROM scanned GROUP BY decision")
