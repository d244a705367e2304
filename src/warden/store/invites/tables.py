"""The invite ledger's tables, and the functions that turn their rows into domain values.

SQLAlchemy rows stay in `store/`; the rules in `membership/invites.py` see only
the frozen `Account` and `Invite` these conversions make.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from warden.membership.invites import Account, Invite, Rights
from warden.store.base import Base, UTCDateTime, utcnow


class InviteAccountRow(Base):
    __tablename__ = "invite_accounts"

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255), index=True)
    local_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    granted_through: Mapped[int | None] = mapped_column(Integer)
    rights: Mapped[str] = mapped_column(String(16), default=Rights.ACTIVE.value)
    rights_reason: Mapped[str | None] = mapped_column(String(1000))
    suspended_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    strikes: Mapped[int] = mapped_column(Integer, default=0)
    review_queued: Mapped[bool] = mapped_column(Boolean, default=False)
    banned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ban_reason: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InviteCodeRow(Base):
    __tablename__ = "invite_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(255), unique=True)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("invite_accounts.person_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    native: Mapped[bool] = mapped_column(Boolean, default=False)


class InviteEdgeRow(Base):
    """invitee -> inviter: one row per invited account, the invite tree."""

    __tablename__ = "invite_edges"

    invitee_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    invitee_name: Mapped[str] = mapped_column(String(255))
    inviter_id: Mapped[int] = mapped_column(ForeignKey("invite_accounts.person_id"), index=True)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("invite_codes.id"))
    application_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approving: Mapped[str | None] = mapped_column(String(64))
    approving_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InviteStrikeRow(Base):
    __tablename__ = "invite_strikes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("invite_accounts.person_id"), index=True)
    invitee_id: Mapped[int] = mapped_column(Integer, unique=True)  # one strike per banned invitee
    reason: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InviteAuditRow(Base):
    __tablename__ = "invite_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InviteCursorRow(Base):
    """Watermarks of the pollers (the modlog's last ban id, ...)."""

    __tablename__ = "invite_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def to_account(row: InviteAccountRow) -> Account:
    return Account(
        person_id=row.person_id,
        name=row.name,
        balance=row.balance,
        granted_through=row.granted_through,
        rights=Rights(row.rights),
        rights_reason=row.rights_reason,
        suspended_until=row.suspended_until,
        strikes=row.strikes,
        review_queued=row.review_queued,
    )


def to_invite(row: InviteCodeRow) -> Invite:
    return Invite(
        code=row.code,
        inviter_id=row.inviter_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        max_uses=row.max_uses,
        uses=row.uses,
        revoked_at=row.revoked_at,
        native=row.native,
    )


def apply_account(row: InviteAccountRow, account: Account, now: datetime) -> None:
    """Write back what a rule (a strike) changed in an account."""
    row.strikes = account.strikes
    row.rights = account.rights.value
    row.rights_reason = account.rights_reason
    row.suspended_until = account.suspended_until
    row.review_queued = account.review_queued
    row.updated_at = now
