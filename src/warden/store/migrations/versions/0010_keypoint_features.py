"""Keypoint features of held pictures (issue 16): ORB keypoints per bank entry.

Flagging a picture Warden has stores its keypoints (never the picture) tied to
the bank entry that banked it, so that crops and small rotations of it are
refused by every replica after any restart (store/keypoint_features.py).

Revision ID: 0010_keypoint_features
Revises: 0009_community
Create Date: 2026-11-25 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warden.store.base import UTCDateTime

revision = "0010_keypoint_features"
down_revision = "0009_community"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keypoint_features",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("points", sa.LargeBinary(), nullable=False),
        sa.Column("descriptors", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["hash_entries.id"],
            name=op.f("fk_keypoint_features_entry_id_hash_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keypoint_features")),
        sa.UniqueConstraint("entry_id", "sha256", name=op.f("uq_keypoint_features_entry_id")),
    )
    op.create_index(
        op.f("ix_keypoint_features_entry_id"), "keypoint_features", ["entry_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_keypoint_features_entry_id"), table_name="keypoint_features")
    op.drop_table("keypoint_features")
