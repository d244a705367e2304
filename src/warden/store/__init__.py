"""Persistence: SQLAlchemy tables, repositories, Alembic migrations, evidence files."""
