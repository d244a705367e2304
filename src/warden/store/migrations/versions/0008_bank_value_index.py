"""Drop the index on hash_entries.value alone (issue 16: bank imports at scale).

Every lookup by value now names the bank ids (`bank_id IN (...)`, store/banks.py
`lookup`), so the unique (bank_id, value) index answers it with one probe per
bank (EXPLAIN on SQLite and PostgreSQL: an index search, not a scan). The second
index on a random 64-character key cost about a third of every import's writes.

Revision ID: 0008_bank_value_index
Revises: 0007_attribution
Create Date: 2026-11-25 18:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0008_bank_value_index"
down_revision = "0007_attribution"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_hash_entries_value", table_name="hash_entries")


def downgrade() -> None:
    op.create_index("ix_hash_entries_value", "hash_entries", ["value"], unique=False)
