"""The database, its WAL and the evidence key are private to Warden's user (issue 12,
finding 8: they were 0644 in a 0755 folder, readable by any local user)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from warden.store.database import Database
from warden.store.quarantine import open_evidence_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): what the old code relied on, and got 0644 files from."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_sqlite_database_wal_and_folder_are_private(tmp_path: Path, open_umask: None) -> None:
    folder = tmp_path / "data"
    db = Database(f"sqlite:///{folder / 'warden.db'}")
    try:
        db.upgrade()
        with db.session() as session:  # a write, so the WAL and shared-memory files exist
            session.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            session.execute(text("INSERT INTO probe VALUES (1)"))
        wal = folder / "warden.db-wal"
        shm = folder / "warden.db-shm"
        assert wal.exists() and shm.exists()
        assert mode(folder) == 0o700
        assert {p.name: mode(p) for p in (folder / "warden.db", wal, shm)} == {
            "warden.db": 0o600,
            "warden.db-wal": 0o600,
            "warden.db-shm": 0o600,
        }
    finally:
        db.dispose()


def test_an_existing_open_database_is_made_private(tmp_path: Path, open_umask: None) -> None:
    """A database created by an older Warden (0644) is tightened at the next start."""
    path = tmp_path / "warden.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    db = Database(f"sqlite:///{path}")
    try:
        assert db.ping()
        assert mode(path) == 0o600
    finally:
        db.dispose()


def test_evidence_folder_and_generated_key_are_private(tmp_path: Path, open_umask: None) -> None:
    data_dir = tmp_path / "fresh"
    store = open_evidence_store(data_dir, None, 365)
    item = store.preserve(b"synthetic bytes", {"sha256": "00"})
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "evidence") == 0o700
    assert mode(data_dir / "evidence.key") == 0o600
    assert mode(data_dir / "evidence" / f"{item}.wev") == 0o600


def test_purge_and_rescan_ledgers_are_private(tmp_path: Path, open_umask: None) -> None:
    from warden.store.purge_ledger import PurgeLedger
    from warden.store.rescan_ledger import RescanLedger

    folder = tmp_path / "data"
    purge = PurgeLedger(folder / "purge-federated.sqlite")
    rescan = RescanLedger(folder / "rescan-x.sqlite")
    try:
        assert mode(folder) == 0o700
        for path in folder.iterdir():  # the files and their -wal/-shm
            assert mode(path) == 0o600, path
    finally:
        purge.close()
        rescan.close()
