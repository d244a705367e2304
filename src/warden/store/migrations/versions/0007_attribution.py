"""Attribution on the decisions log (issue 18): who uploaded (or tried to upload) what.

Adds the Lemmy account (person id and name) the ingest proxy resolved from the
uploader's own login, the client address (X-Forwarded-For as the trusted proxies
vouch for it), the pict-rs alias once pict-rs stored the file, and the link from
the validation hook's row to the proxy's decision it answered from.

Revision ID: 0007_attribution
Revises: 0006_console
Create Date: 2026-11-25 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_attribution"
down_revision = "0006_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("account", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("alias", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("linked_decision_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_decisions_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_alias"), ["alias"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decisions_linked_decision_id"), ["linked_decision_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_linked_decision_id"))
        batch_op.drop_index(batch_op.f("ix_decisions_alias"))
        batch_op.drop_index(batch_op.f("ix_decisions_account"))
        batch_op.drop_column("linked_decision_id")
        batch_op.drop_column("alias")
        batch_op.drop_column("client_address")
        batch_op.drop_column("account")
        batch_op.drop_column("account_id")
