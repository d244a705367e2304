"""The database: one engine per process, sessions per unit of work, migrations.

SQLite (the embedded default) gets WAL, a busy timeout and foreign keys so
several threads and a CLI can share the file; PostgreSQL is used as is.
`upgrade()` applies the Alembic migrations shipped inside the package, which
is what `warden db upgrade` and `warden serve` run.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from warden.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def private_sqlite_file(path: Path) -> None:
    """Make `path` a database file only its owner can read: 0600 in a 0700 folder.

    The database holds CSAM-bank hashes, refused media's hashes, invite codes and
    token digests (issue 12, finding 8: they were 0644 in a 0755 folder). SQLite
    creates the -wal and -shm files with the database file's own permissions
    (sqlite3.c `findCreateFileMode`), so creating the file 0600 before SQLite
    opens it covers them; existing files of ours are tightened. A folder that
    already exists is the admin's: it is not changed, only reported when others
    may enter it.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
    elif folder.stat().st_mode & 0o077:
        log.warning(
            "%s is open to other users (mode %o): `chmod 700 %s` keeps the database's "
            "folder private",
            folder,
            stat.S_IMODE(folder.stat().st_mode),
            folder,
        )
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for member in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if member.exists() and stat.S_IMODE(member.stat().st_mode) & 0o077:
                member.chmod(0o600)
        except OSError as exc:
            log.warning("could not make %s private (chmod 600): %s", member, exc)


def make_engine(url: str) -> Engine:
    """An engine for `url`; for a SQLite file, creates it (and its folder) private."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Engine, session factory and migrations for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = self.engine
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision` (idempotent)."""
        from alembic import command

        try:
            command.upgrade(self.alembic_config(), revision)
        except Exception as exc:
            raise StoreError(f"database migration failed on {self.backend}: {exc}") from exc

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev

    def dispose(self) -> None:
        self.engine.dispose()
