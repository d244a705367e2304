"""Invites: accounts (balance, rights, strikes), codes, the invite tree, strikes, audit, cursors.

Revision ID: 0003_invites
Revises: 0002_hash_banks
Create Date: 2026-11-25 02:07:13.388616
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import warden.store.base

revision = "0003_invites"
down_revision = "0002_hash_banks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invite_accounts",
        sa.Column("person_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("local_user_id", sa.Integer(), nullable=True),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("granted_through", sa.Integer(), nullable=True),
        sa.Column("rights", sa.String(length=16), nullable=False),
        sa.Column("rights_reason", sa.String(length=1000), nullable=True),
        sa.Column("suspended_until", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("review_queued", sa.Boolean(), nullable=False),
        sa.Column("banned_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ban_reason", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_invite_accounts")),
    )
    with op.batch_alter_table("invite_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_accounts_local_user_id"), ["local_user_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_invite_accounts_name"), ["name"], unique=False)

    op.create_table(
        "invite_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_audit")),
    )
    with op.batch_alter_table("invite_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_audit_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_invite_audit_person_id"), ["person_id"], unique=False)

    op.create_table(
        "invite_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invite_cursors")),
    )
    op.create_table(
        "invite_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("native", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["invite_accounts.person_id"],
            name=op.f("fk_invite_codes_inviter_id_invite_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_invite_codes_code")),
    )
    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_codes_inviter_id"), ["inviter_id"], unique=False
        )

    op.create_table(
        "invite_strikes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("invitee_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["invite_accounts.person_id"],
            name=op.f("fk_invite_strikes_inviter_id_invite_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_strikes")),
        sa.UniqueConstraint("invitee_id", name=op.f("uq_invite_strikes_invitee_id")),
    )
    with op.batch_alter_table("invite_strikes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_strikes_inviter_id"), ["inviter_id"], unique=False
        )

    op.create_table(
        "invite_edges",
        sa.Column("invitee_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("invitee_name", sa.String(length=255), nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=True),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("created_at", warden.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approving", sa.String(length=64), nullable=True),
        sa.Column("approving_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_at", warden.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["code_id"], ["invite_codes.id"], name=op.f("fk_invite_edges_code_id_invite_codes")
        ),
        sa.ForeignKeyConstraint(
            ["inviter_id"],
            ["invite_accounts.person_id"],
            name=op.f("fk_invite_edges_inviter_id_invite_accounts"),
        ),
        sa.PrimaryKeyConstraint("invitee_id", name=op.f("pk_invite_edges")),
        sa.UniqueConstraint("application_id", name=op.f("uq_invite_edges_application_id")),
    )
    with op.batch_alter_table("invite_edges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invite_edges_inviter_id"), ["inviter_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invite_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_edges_inviter_id"))

    op.drop_table("invite_edges")
    with op.batch_alter_table("invite_strikes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_strikes_inviter_id"))

    op.drop_table("invite_strikes")
    with op.batch_alter_table("invite_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_codes_inviter_id"))

    op.drop_table("invite_codes")
    op.drop_table("invite_cursors")
    with op.batch_alter_table("invite_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_audit_person_id"))
        batch_op.drop_index(batch_op.f("ix_invite_audit_at"))

    op.drop_table("invite_audit")
    with op.batch_alter_table("invite_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_accounts_name"))
        batch_op.drop_index(batch_op.f("ix_invite_accounts_local_user_id"))

    op.drop_table("invite_accounts")
