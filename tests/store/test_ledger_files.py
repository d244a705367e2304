"""Ledger files (purge, rescan) upgrade in place through numbered schema steps.

The "old" files here are written with the exact SQL of the code before the steps were
numbered (commit d1723c4: `store/purge_ledger.py` `_SCHEMA`, `store/rescan_ledger.py`
`_SCHEMA`, `_LATER_COLUMNS` and `_PURGEABLE_VIEW`), rows included, at user_version 0.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from warden.domain.purge import PurgeState
from warden.errors import LedgerFileError
from warden.store.ledger_file import LedgerFile, statements
from warden.store.purge_ledger import PurgeLedger
from warden.store.rescan_ledger import RescanLedger

OLD_PURGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS purge (
    alias TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'pending', 'done', 'failed', 'skipped')),
    detail TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS purge_state ON purge (state);
"""
OLD_PURGE_ROWS = [
    ("a-planned.png", "thumbnail of post 1", "planned", None),
    ("b-pending.png", "thumbnail of post 2", "pending", None),
    ("c-purged.png", "thumbnail of post 3", "done", "c-purged.png,c-twin.png"),
    ("d-gone.png", "thumbnail of post 4", "done", "already gone"),
    ("e-failed.png", "thumbnail of post 5", "failed", "pict-rs answered 500"),
    ("f-local.png", "thumbnail of post 6", "skipped", "same file as local up.png"),
]

OLD_RESCAN_FIRST = """
CREATE TABLE IF NOT EXISTS scanned (
    key TEXT PRIMARY KEY,
    decision TEXT NOT NULL,
    reasons TEXT NOT NULL,
    sha256 TEXT,
    verdict TEXT,
    scanned_at TEXT NOT NULL
);
"""
OLD_RESCAN_LATER = {
    "decision_id": "INTEGER",
    "evidence_id": "TEXT",
    "alias": "TEXT",
    "purge_state": "TEXT",
    "purge_detail": "TEXT",
    "purged_at": "TEXT",
}
OLD_RESCAN_VIEW = """
CREATE VIEW IF NOT EXISTS purgeable AS
SELECT key, alias, purge_state FROM scanned
WHERE decision = 'reject'
  AND (reasons LIKE '%"label_reject"%' OR reasons LIKE '%"hash_match"%');
"""


def old_purge_ledger(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(OLD_PURGE_SCHEMA)
        db.executemany(
            "INSERT INTO purge (alias, source, state, detail, updated_at) VALUES (?, ?, ?, ?, ?)",
            [(*row, "2026-01-01T00:00:00+00:00") for row in OLD_PURGE_ROWS],
        )
    db.close()


def old_rescan_ledger(path: Path, *, later_columns: bool) -> None:
    """As the code before numbered steps left it; `later_columns=False`: as the first
    release did (the columns were then added in place, one ALTER TABLE each)."""
    with sqlite3.connect(path) as db:
        db.executescript(OLD_RESCAN_FIRST)
        rows = [
            ("000/face", "reject", ["label_reject"]),
            ("000/bank", "reject", ["hash_match"]),
            ("000/broken", "reject", ["corrupt_media"]),
            ("001/coffee", "accept", []),
        ]
        db.executemany(
            "INSERT INTO scanned (key, decision, reasons, sha256, verdict, scanned_at)"
            " VALUES (?, ?, ?, 'ab', NULL, '2026-01-01T00:00:00+00:00')",
            [(k, d, json.dumps(r)) for k, d, r in rows],
        )
        if later_columns:
            for column, kind in OLD_RESCAN_LATER.items():
                db.execute(f"ALTER TABLE scanned ADD COLUMN {column} {kind}")
            db.executescript(OLD_RESCAN_VIEW)
            db.execute(
                "UPDATE scanned SET alias = 'face.png', purge_state = 'purged',"
                " purge_detail = 'face.png' WHERE key = '000/face'"
            )
            db.execute(
                "UPDATE scanned SET alias = 'bank.png', purge_state = 'failed' WHERE key = '000/bank'"
            )
    db.close()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.close()
    return version


def test_an_old_purge_ledger_upgrades_in_place_to_one_set_of_states(tmp_path: Path) -> None:
    path = tmp_path / "purge-federated.sqlite"
    old_purge_ledger(path)
    assert user_version(path) == 0
    ledger = PurgeLedger(path)
    try:
        assert ledger.version == len(PurgeLedger.steps) == 2
        assert ledger.summary() == {
            "planned": 1,
            "pending": 1,
            "purged": 1,
            "gone": 1,
            "failed": 1,
            "skipped": 1,
        }
        assert list(ledger.todo()) == [("b-pending.png", "pending"), ("a-planned.png", "planned")]
        assert ledger.retry_failed() == 1
        ledger.mark_purge("a-planned.png", PurgeState.GONE, "already gone")
        with sqlite3.connect(path) as db:
            kept = dict(db.execute("SELECT alias, detail FROM purge").fetchall())
        db.close()
        assert kept["c-purged.png"] == "c-purged.png,c-twin.png"  # the audit trail stays
        assert kept["f-local.png"] == "same file as local up.png"
    finally:
        ledger.close()
    again = PurgeLedger(path)  # reopened: nothing to do, nothing lost
    try:
        assert again.version == 2 and again.count() == len(OLD_PURGE_ROWS)
    finally:
        again.close()


def test_every_purge_state_fits_both_ledgers(tmp_path: Path) -> None:
    """The purge ledger's CHECK admits exactly the shared states (and no old `done`)."""
    ledger = PurgeLedger(tmp_path / "p.sqlite")
    try:
        ledger.replan([("x.png", "test")])
        for state in PurgeState:
            ledger.mark_purge("x.png", state, None)
            assert ledger.summary() == {state.value: 1}
        with pytest.raises(sqlite3.IntegrityError):
            ledger._db.execute("UPDATE purge SET state = 'done'")
    finally:
        ledger.close()


@pytest.mark.parametrize("later_columns", [True, False], ids=["current", "first-release"])
def test_an_old_rescan_ledger_upgrades_in_place(tmp_path: Path, later_columns: bool) -> None:
    path = tmp_path / "rescan-folder.sqlite"
    old_rescan_ledger(path, later_columns=later_columns)
    ledger = RescanLedger(path)
    try:
        assert ledger.version == len(RescanLedger.steps) == 3
        assert ledger.decisions() == {
            "000/face": "reject",
            "000/bank": "reject",
            "000/broken": "reject",
            "001/coffee": "accept",
        }
        if later_columns:
            assert ledger.refused_unpurged() == {"000/bank": "bank.png"}
            assert ledger.purge_todo() == [("000/bank", "bank.png")]
            assert ledger.purge_summary() == {"purged": 1, "failed": 1}
        else:
            assert ledger.refused_unpurged() == {"000/bank": None, "000/face": None}
            ledger.set_alias("000/face", "face.png")
            assert ledger.purge_todo() == [("000/face", "face.png")]
        ledger.mark_purge("000/bank", PurgeState.PENDING)
        assert "000/bank" in ledger.refused_unpurged()  # interrupted: still to do
        row = ledger.row("000/face")
        assert row is not None and row["sha256"] == "ab"
    finally:
        ledger.close()


def test_a_newer_ledger_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "purge-federated.sqlite"
    PurgeLedger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(LedgerFileError, match="schema step 7, written by a newer Warden"):
        PurgeLedger(path)
    assert user_version(path) == 7


class _Broken(LedgerFile):
    steps = (
        "CREATE TABLE one (x INTEGER);",
        "CREATE TABLE two (x INTEGER); INSERT INTO nowhere VALUES (1);",
    )


def test_a_failing_step_leaves_the_file_at_the_step_before(tmp_path: Path) -> None:
    """A step and its version bump are one transaction: no half-applied step."""
    path = tmp_path / "broken.sqlite"
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        _Broken(path)
    assert user_version(path) == 1
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"one"}


def test_statements_split_where_sqlite_says_a_statement_ends() -> None:
    script = "CREATE TABLE t (x TEXT DEFAULT 'a;b'); -- a comment; still one\nINSERT INTO t VALUES (';');"
    assert [s.strip() for s in statements(script)] == [
        "CREATE TABLE t (x TEXT DEFAULT 'a;b');",
        "-- a comment; still one\nINSERT INTO t VALUES (';');",
    ]
    with pytest.raises(LedgerFileError, match="incomplete"):
        list(statements("CREATE TABLE t (x TEXT DEFAULT 'a;"))
