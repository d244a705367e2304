"""The decisions log and API tokens (the first schema).

Revision ID: 0001_decisions_and_tokens
Revises:
Create Date: 2026-11-24 23:16:44.428477
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warden.store.base

revision = "0001_decisions_and_tokens"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("pdq", sa.String(length=64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.Column("media_format", sa.String(length=16), nullable=True),
        sa.Column("media", sa.JSON(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("config_version", sa.String(length=64), nullable=False),
        sa.Column("uploader", sa.String(length=255), nullable=True),
        sa.Column("evidence_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_decision"), ["decision"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_sha256"))
        batch_op.drop_index(batch_op.f("ix_decisions_decision"))
        batch_op.drop_index(batch_op.f("ix_decisions_created_at"))

    op.drop_table("decisions")
    op.drop_table("api_tokens")
