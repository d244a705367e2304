"""Accountability: bans counted against inviters as strikes, and the admin's grants and rights.

A ban is counted once per banned invitee (the strike's invitee is unique), so
the modlog read twice, or by two workers, strikes an inviter once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from warden.membership import invites as rules
from warden.membership.invites import Account, Rights, StrikeStep
from warden.store.invites.ledger import InviteLedger
from warden.store.invites.tables import (
    InviteAccountRow,
    InviteCodeRow,
    InviteEdgeRow,
    InviteStrikeRow,
    apply_account,
    to_account,
)


@dataclass(frozen=True)
class StrikeOutcome:
    inviter: Account
    fired: tuple[StrikeStep, ...]


class InviteAccountability(InviteLedger):
    """Bans, strikes and their consequences; an admin's grants and rights."""

    def record_ban(
        self, invitee_id: int, invitee_name: str, reason: str, now: datetime, actor: str
    ) -> StrikeOutcome | None:
        """An account was banned: mark it, void its unused codes (Tildes does the same), and
        strike its inviter once. Returns the inviter's outcome, or None when nobody invited it
        or this ban was already counted."""
        with self.db.session() as session:
            row = self._row(session, invitee_id, invitee_name)
            if row.banned_at is None:
                row.banned_at = now
                row.ban_reason = reason
                session.execute(
                    update(InviteCodeRow)
                    .where(
                        InviteCodeRow.inviter_id == invitee_id,
                        InviteCodeRow.revoked_at.is_(None),
                        InviteCodeRow.uses < InviteCodeRow.max_uses,
                    )
                    .values(revoked_at=now)
                )
                self._audit(session, actor, "banned", invitee_id, reason=reason)
            edge = session.get(InviteEdgeRow, invitee_id)
            if edge is None:
                return None
            if session.scalars(
                select(InviteStrikeRow).where(InviteStrikeRow.invitee_id == invitee_id)
            ).first():
                return None
            inviter = self._row(session, edge.inviter_id)
            after, fired = rules.strike(to_account(inviter), self.policy, now, reason)
            session.add(
                InviteStrikeRow(
                    inviter_id=inviter.person_id,
                    invitee_id=invitee_id,
                    reason=reason,
                    created_at=now,
                )
            )
            apply_account(inviter, after, now)
            self._audit(
                session,
                actor,
                "strike",
                inviter.person_id,
                invitee=invitee_name,
                reason=reason,
                strikes=after.strikes,
                consequences=[f"{s.action.value}:{s.days}" for s in fired],
            )
            try:
                session.flush()
            except IntegrityError:  # counted concurrently by another worker
                session.rollback()
                return None
            return StrikeOutcome(after, tuple(fired))

    def record_unban(self, person_id: int, actor: str) -> None:
        with self.db.session() as session:
            row = session.get(InviteAccountRow, person_id)
            if row is not None and row.banned_at is not None:
                row.banned_at = None
                row.ban_reason = None
                self._audit(session, actor, "unbanned", person_id)

    def grant(self, person_id: int, name: str, count: int, actor: str, reason: str) -> Account:
        with self.db.session() as session:
            row = self._row(session, person_id, name)
            row.balance = max(0, row.balance + count)
            self._audit(
                session, actor, "grant", person_id, count=count, balance=row.balance, reason=reason
            )
            return to_account(row)

    def set_rights(
        self, person_id: int, name: str, rights: Rights, actor: str, reason: str
    ) -> Account:
        with self.db.session() as session:
            row = self._row(session, person_id, name)
            row.rights = rights.value
            row.rights_reason = reason or None
            if rights is Rights.ACTIVE:
                row.suspended_until = None
                row.review_queued = False
            self._audit(session, actor, f"rights:{rights.value}", person_id, reason=reason)
            return to_account(row)
