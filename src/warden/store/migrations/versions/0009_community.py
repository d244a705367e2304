"""Where uploaded media was posted (issue 18): the Lemmy post and community per alias.

The console's placement service fills `media_places` from Lemmy's database
(read only) or its search API, so that moderators see exactly the reviews
posted in the communities they moderate (store/places.py).

Revision ID: 0009_community
Revises: 0008_bank_value_index
Create Date: 2026-11-25 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warden.store.base import UTCDateTime

revision = "0009_community"
down_revision = "0008_bank_value_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_places",
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("post_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("community_id", sa.BigInteger(), nullable=False),
        sa.Column("community", sa.String(length=255), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("found_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alias", "post_id"),
    )
    op.create_index(
        op.f("ix_media_places_community_id"), "media_places", ["community_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_media_places_community_id"), table_name="media_places")
    op.drop_table("media_places")
