"""Hash feeds between instances: published feeds and their logs, subscriptions with
their trust, cursors and quarantine, the hashes each feed lists (provenance) and the
batch ids already applied (replay checks).

Revision ID: 0005_feeds
Revises: 0004_token_scopes
Create Date: 2026-11-25 17:14:17.770948
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warden.store.base

revision = "0005_feeds"
down_revision = "0004_token_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("feed", sa.String(length=63), nullable=False),
        sa.Column("fingerprint", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=True),
        sa.Column("bank", sa.String(length=63), nullable=False),
        sa.Column("trust", sa.String(length=8), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("head_seen", sa.BigInteger(), nullable=False),
        sa.Column("issued_seen", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("last_ok_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_subscriptions")),
        sa.UniqueConstraint("url", name=op.f("uq_feed_subscriptions_url")),
    )
    op.create_table(
        "feeds_published",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("bank", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("push_to", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("head", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds_published")),
        sa.UniqueConstraint("name", name=op.f("uq_feeds_published_name")),
    )
    op.create_table(
        "feed_listings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("listed_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["feed_subscriptions.id"],
            name=op.f("fk_feed_listings_subscription_id_feed_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_listings")),
        sa.UniqueConstraint(
            "subscription_id", "value", name=op.f("uq_feed_listings_subscription_id")
        ),
    )
    with op.batch_alter_table("feed_listings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_listings_value"), ["value"], unique=False)

    op.create_table(
        "feed_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("added_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["feeds_published.id"],
            name=op.f("fk_feed_log_feed_id_feeds_published"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_log")),
        sa.UniqueConstraint("feed_id", "seq", name=op.f("uq_feed_log_feed_id")),
    )
    with op.batch_alter_table("feed_log", schema=None) as batch_op:
        batch_op.create_index("ix_feed_log_live", ["feed_id", "live", "value"], unique=False)

    op.create_table(
        "feed_seen_batches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("seen_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["feed_subscriptions.id"],
            name=op.f("fk_feed_seen_batches_subscription_id_feed_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_seen_batches")),
    )
    with op.batch_alter_table("feed_seen_batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feed_seen_batches_subscription_id"), ["subscription_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feed_seen_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_seen_batches_subscription_id"))

    op.drop_table("feed_seen_batches")
    with op.batch_alter_table("feed_log", schema=None) as batch_op:
        batch_op.drop_index("ix_feed_log_live")

    op.drop_table("feed_log")
    with op.batch_alter_table("feed_listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_listings_value"))

    op.drop_table("feed_listings")
    op.drop_table("feeds_published")
    op.drop_table("feed_subscriptions")
