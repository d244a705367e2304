"""The rescan ledger: which stored objects were scanned, and with what result.

A SQLite file in the data folder, one row per store key, committed as each
result arrives: a rescan interrupted at any point resumes where it stopped,
and the rows are the report (decision, reasons, SHA-256, the full verdict).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


class RescanLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def seen(self, key: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM scanned WHERE key = ?", (key,)).fetchone() is not None
        )

    def record(self, result: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO scanned (key, decision, reasons, sha256, verdict, scanned_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                result.key,
                result.decision,
                json.dumps(list(result.reasons)),
                result.sha256,
                json.dumps(result.verdict) if result.verdict is not None else None,
                datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )

    def decisions(self) -> dict[str, str]:
        return {str(k): str(d) for k, d in self._db.execute("SELECT key, decision FROM scanned")}

    def summary(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT decision, count(*) FROM scanned GROUP BY decision"
        ).fetchall()
        return {str(d): int(n) for d, n in rows}
