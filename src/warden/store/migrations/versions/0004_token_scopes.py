"""API token scopes: `scan` and `admin`; every existing token becomes `scan` only.

Before this revision any token could call every `/api/v1` endpoint, reload
included. Existing tokens are migrated to `scan` alone, the safe choice: a
token handed to a scanning bot must not keep the power to change the
configuration. Admins who used a token for `/api/v1/admin/reload` make a new
one with `warden tokens create NAME --scope admin`.

Revision ID: 0004_token_scopes
Revises: 0003_invites
Create Date: 2026-11-25 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_token_scopes"
down_revision = "0003_invites"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.String(length=64), server_default="scan", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")
