"""Migrations apply on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from warden.store.database import Database
from warden.store.tables import metadata


def test_migrations_reach_head_and_match_the_models(database: Database):
    head = ScriptDirectory.from_config(database.alembic_config()).get_current_head()
    assert database.current_revision() == head
    with database.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_idempotent(database: Database):
    before = database.current_revision()
    database.upgrade()
    assert database.current_revision() == before
    assert database.ping()


def test_unreachable_database_does_not_ping(tmp_path):
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert db.ping() is False
