"""Spending invites: issuing a code from a balance, revoking it, refunding a failed one.

The balance only ever moves by one conditional UPDATE (`balance > 0` to
spend, `revoked_at IS NULL` to revoke), so two requests at the same moment
cannot spend the last invite twice or refund a revocation twice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select, update

from warden.errors import InviteRefused
from warden.membership import invites as rules
from warden.membership.invites import Invite
from warden.membership.requirements import UserFacts
from warden.store.base import utcnow
from warden.store.invites.ledger import InviteLedger, short_code
from warden.store.invites.tables import InviteAccountRow, InviteCodeRow, to_account, to_invite


class InviteSpending(InviteLedger):
    """Codes issued, revoked and refunded, and Lemmy 1.0's native links kept in step."""

    def spend(
        self, facts: UserFacts, now: datetime, *, code: str | None = None, native: bool = False
    ) -> Invite:
        """Take one invite from the user's balance and issue a code (or record a native one).

        Raises InviteRefused with the reason in words (rights, eligibility, balance)."""
        with self.db.session() as session:
            row = self._row(session, facts.person_id, facts.name)
            self._refill_row(session, row, facts, now)
            refusal = rules.creation_refusal(to_account(row), self.policy, now, facts)
            if refusal:
                raise InviteRefused(
                    refusal, "no_invites_left" if row.balance <= 0 else "invite_refused"
                )
            spent = session.execute(
                update(InviteAccountRow)
                .where(InviteAccountRow.person_id == row.person_id, InviteAccountRow.balance > 0)
                .values(balance=InviteAccountRow.balance - 1, updated_at=now)
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise InviteRefused("You have no invites left.", "no_invites_left")
            invite = rules.issue(to_account(row), self.policy, now, code)
            if native:
                invite = replace(invite, native=True)
            session.add(
                InviteCodeRow(
                    code=invite.code,
                    inviter_id=row.person_id,
                    created_at=now,
                    expires_at=invite.expires_at,
                    max_uses=invite.max_uses,
                    native=native,
                )
            )
            self._audit(
                session,
                facts.name,
                "create",
                row.person_id,
                code=short_code(invite.code),
                native=native,
                expires_at=invite.expires_at,
            )
            return invite

    def record_native(self, code: str, expires_at: datetime | None, max_uses: int | None) -> None:
        """Lemmy 1.0 made the link: keep its token, expiry and uses as Lemmy has them."""
        with self.db.session() as session:
            row = session.scalars(select(InviteCodeRow).where(InviteCodeRow.code == code)).first()
            if row is not None:
                if expires_at is not None:
                    row.expires_at = expires_at
                if max_uses is not None:
                    row.max_uses = max_uses

    def rename_code(self, old: str, new: str) -> None:
        """Swap a placeholder for the token Lemmy 1.0 issued."""
        with self.db.session() as session:
            session.execute(update(InviteCodeRow).where(InviteCodeRow.code == old).values(code=new))

    def refund(self, person_id: int, code: str, actor: str, why: str) -> None:
        """Give back an invite whose creation failed upstream (Lemmy refused it)."""
        with self.db.session() as session:
            session.execute(
                update(InviteCodeRow)
                .where(InviteCodeRow.code == code, InviteCodeRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            session.execute(
                update(InviteAccountRow)
                .where(InviteAccountRow.person_id == person_id)
                .values(balance=InviteAccountRow.balance + 1)
            )
            self._audit(session, actor, "refund", person_id, code=short_code(code), why=why)

    def revoke(self, code: str, person_id: int | None, now: datetime, actor: str) -> int:
        """Revoke a code (its owner's, unless `person_id` is None: an admin); returns the
        invites returned to the owner's balance."""
        with self.db.session() as session:
            row = session.scalars(
                select(InviteCodeRow).where(InviteCodeRow.code == code).with_for_update()
            ).first()
            if row is None or (person_id is not None and row.inviter_id != person_id):
                raise InviteRefused("There is no such invite of yours.", "unknown_invite")
            refund = rules.refund_on_revoke(to_invite(row), now)
            done = session.execute(
                update(InviteCodeRow)
                .where(InviteCodeRow.id == row.id, InviteCodeRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise InviteRefused("That invite was already revoked.", "already_revoked")
            if refund:
                session.execute(
                    update(InviteAccountRow)
                    .where(InviteAccountRow.person_id == row.inviter_id)
                    .values(balance=InviteAccountRow.balance + refund, updated_at=now)
                )
            self._audit(
                session, actor, "revoke", row.inviter_id, code=short_code(code), returned=refund
            )
            return refund
