"""The rescan ledger: which stored objects were scanned, and with what result.

A SQLite file in the data folder, one row per store key, committed as each
result arrives: a rescan interrupted at any point resumes where it stopped,
and the rows are the report (decision, reasons, SHA-256, the full verdict,
the decision and evidence ids, and for `--purge` the alias and what pict-rs
did with it).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warden.store.database import private_sqlite_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scanned (
    key TEXT PRIMARY KEY,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    sha256 TEXT,
    verdict TEXT,
    scanned_at TEXT NOT NULL
);
"""
#: Columns added after the first release; added in place to older ledgers.
_LATER_COLUMNS = {
    "decision_id": "INTEGER",
    "evidence_id": "TEXT",
    "alias": "TEXT",
    "purge_state": "TEXT",
    "purge_detail": "TEXT",
    "purged_at": "TEXT",
}


#: Rows `--purge` acts on: refused for a label or a hash match (the evidence codes).
_PURGEABLE_VIEW = """
CREATE VIEW IF NOT EXISTS purgeable AS
SELECT key, alias, purge_state FROM scanned
WHERE decision = 'reject'
  AND (reasons LIKE '%"label_reject"%' OR reasons LIKE '%"hash_match"%');
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RescanLedger:
    def __init__(self, path: Path) -> None:
        private_sqlite_file(path)  # 0600 in a 0700 folder, like the main database
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(scanned)")}
        for column, kind in _LATER_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE scanned ADD COLUMN {column} {kind}")
        self._db.executescript(_PURGEABLE_VIEW)

    def close(self) -> None:
        self._db.close()

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
                _now(),
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
        not yet purged, or whose purge failed, with their alias when known."""
        rows = self._db.execute(
            "SELECT key, alias FROM purgeable"
            " WHERE (purge_state IS NULL OR purge_state = 'failed') ORDER BY key"
        )
        return {str(k): (str(a) if a else None) for k, a in rows}

    def set_alias(self, key: str, alias: str) -> None:
        self._db.execute("UPDATE scanned SET alias = ? WHERE key = ?", (alias, key))

    def purge_todo(self) -> list[tuple[str, str]]:
        rows = self._db.execute(
            "SELECT key, alias FROM purgeable WHERE alias IS NOT NULL"
            " AND (purge_state IS NULL OR purge_state = 'failed') ORDER BY key"
        )
        return [(str(k), str(a)) for k, a in rows]

    def mark_purge(self, key: str, state: str, detail: str | None = None) -> None:
        self._db.execute(
            "UPDATE scanned SET purge_state = ?, purge_detail = ?, purged_at = ? WHERE key = ?",
            (state, detail, _now(), key),
        )

    def purge_summary(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT coalesce(purge_state, 'not purged'), count(*) FROM purgeable GROUP BY 1"
        ).fetchall()
        return {str(s): int(n) for s, n in rows}

    def decisions(self) -> dict[str, str]:
        return {str(k): str(d) for k, d in self._db.execute("SELECT key, decision FROM scanned")}

    def summary(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT decision, count(*) FROM scanned GROUP BY decision"
        ).fetchall()
        return {str(d): int(n) for d, n in rows}
