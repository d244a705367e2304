"""Migrations apply on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

from warden.domain.banks import BankKind
from warden.store.banks import BankStore
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


def test_lookup_by_value_probes_the_unique_index(database: Database):
    """Migration 0008 dropped the index on `value` alone: the statement
    `BankStore.lookup` runs must still find a hash by an index search on each
    backend (a scan at 10 M rows takes seconds). Its plan is asked of the database."""
    store = BankStore(database)
    for name in ("a", "b"):
        store.create_bank(name, BankKind.SHA256)
    values = [f"{k:064x}" for k in range(20_000)]
    store.add_many("a", values, [""] * len(values), source="test", added_by="test")
    if database.engine.dialect.name == "postgresql":
        with database.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE hash_entries")
    seen: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM hash_entries" in statement:
            seen.append((statement, params))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        assert [e.value for e in store.lookup(values[777])] == [values[777]]
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    ((statement, params),) = seen
    sqlite = database.engine.dialect.name == "sqlite"
    with database.engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        plan = " ".join(str(row) for row in conn.exec_driver_sql(explain + statement, params))
    assert "SCAN hash_entries" not in plan and "Seq Scan on hash_entries" not in plan, plan
    assert ("autoindex_hash_entries_1" if sqlite else "uq_hash_entries_bank_id") in plan, plan
