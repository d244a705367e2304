"""Hash banks: banks, their entries (with provenance) and the change log matchers follow.

Revision ID: 0002_hash_banks
Revises: 0001_decisions_and_tokens
Create Date: 2026-11-25 00:09:52.082739
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warden.store.base

revision = "0002_hash_banks"
down_revision = "0001_decisions_and_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hash_banks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("csam", sa.Boolean(), nullable=False),
        sa.Column("pdq_threshold", sa.Integer(), nullable=False),
        sa.Column("min_quality", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_banks")),
        sa.UniqueConstraint("name", name=op.f("uq_hash_banks_name")),
    )
    op.create_table(
        "hash_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_events")),
    )
    op.create_table(
        "hash_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("added_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(length=255), nullable=True),
        sa.Column("removed_reason", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["hash_banks.id"],
            name=op.f("fk_hash_entries_bank_id_hash_banks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_entries")),
        sa.UniqueConstraint("bank_id", "value", name=op.f("uq_hash_entries_bank_id")),
    )
    with op.batch_alter_table("hash_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hash_entries_value"), ["value"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hash_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hash_entries_value"))

    op.drop_table("hash_entries")
    op.drop_table("hash_events")
    op.drop_table("hash_banks")
