"""Redemption: codes redeemed by applicants, approval claims, and the edges of the tree.

A redemption is one conditional UPDATE (`uses < max_uses AND not revoked AND
not expired`) together with the tree edge, whose invitee is the primary key
(an account is invited once) and whose application id is unique. An approval
is claimed by one conditional UPDATE too (`approving = worker WHERE approved_at
IS NULL AND approving IS NULL`, or a stale claim), so two workers never both
approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from warden.errors import InviteRefused
from warden.membership import invites as rules
from warden.store.invites.ledger import InviteLedger, short_code
from warden.store.invites.tables import (
    InviteAccountRow,
    InviteAuditRow,
    InviteCodeRow,
    InviteEdgeRow,
    to_invite,
)


@dataclass(frozen=True)
class Redemption:
    invitee_id: int
    inviter_id: int
    inviter_name: str
    code: str
    application_id: int | None


@dataclass(frozen=True)
class _Applicant:
    """Who redeems a code: the account and its registration application (none on 1.0)."""

    invitee_id: int
    invitee_name: str
    application_id: int | None


class InviteRedemptions(InviteLedger):
    """Codes redeemed by applicants, approvals claimed by one worker, edges of the tree."""

    def redeem(
        self,
        code: str,
        *,
        invitee_id: int,
        invitee_name: str,
        application_id: int | None,
        now: datetime,
    ) -> Redemption:
        """Redeem a code for an applicant: exactly one redemption per code use, per
        applicant and per application, whatever runs at the same time. Asking again
        for the same applicant and code (a restart, a second worker, one that lost
        the race to its twin) answers the redemption that stands."""
        applicant = _Applicant(invitee_id, invitee_name, application_id)
        try:
            return self._redeem(code, applicant, now)
        except (InviteRefused, IntegrityError) as exc:
            standing = self._standing(invitee_id, code)
            if standing is not None:
                return standing
            if isinstance(exc, IntegrityError):
                raise InviteRefused("this account was already invited", "already_invited") from exc
            raise

    def _standing(self, invitee_id: int, code: str) -> Redemption | None:
        with self.db.session() as session:
            edge = session.get(InviteEdgeRow, invitee_id)
            if edge is None or edge.code_id is None:
                return None
            code_row = session.get(InviteCodeRow, edge.code_id)
            if code_row is None or code_row.code != code:
                return None
            inviter = session.get(InviteAccountRow, edge.inviter_id)
            return Redemption(
                invitee_id,
                edge.inviter_id,
                inviter.name if inviter else "",
                code,
                edge.application_id,
            )

    def _redeem(self, code: str, applicant: _Applicant, now: datetime) -> Redemption:
        with self.db.session() as session:
            if session.get(InviteEdgeRow, applicant.invitee_id) is not None:
                raise InviteRefused("this account was already invited", "already_invited")
            found = session.scalars(select(InviteCodeRow).where(InviteCodeRow.code == code)).first()
            refusal = rules.redemption_refusal(to_invite(found) if found else None, now)
            if refusal or found is None:
                raise InviteRefused(refusal or "the invite code is not known", "invalid_invite")
            if found.native:
                raise InviteRefused("that code is a Lemmy invite link", "invalid_invite")
            won = session.execute(
                update(InviteCodeRow)
                .where(
                    InviteCodeRow.id == found.id,
                    InviteCodeRow.uses < InviteCodeRow.max_uses,
                    InviteCodeRow.revoked_at.is_(None),
                    InviteCodeRow.expires_at > now,
                )
                .values(uses=InviteCodeRow.uses + 1)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                raise InviteRefused("the invite code was already used", "invalid_invite")
            session.add(
                InviteEdgeRow(
                    invitee_id=applicant.invitee_id,
                    invitee_name=applicant.invitee_name,
                    inviter_id=found.inviter_id,
                    code_id=found.id,
                    application_id=applicant.application_id,
                    created_at=now,
                )
            )
            inviter = session.get(InviteAccountRow, found.inviter_id)
            self._audit(
                session,
                "warden",
                "redeem",
                found.inviter_id,
                code=short_code(code),
                invitee=applicant.invitee_name,
                invitee_id=applicant.invitee_id,
                application_id=applicant.application_id,
            )
            session.flush()  # an IntegrityError here: the same applicant, concurrently
            return Redemption(
                applicant.invitee_id,
                found.inviter_id,
                inviter.name if inviter else "",
                code,
                applicant.application_id,
            )

    def note_refused_application(
        self,
        application_id: int,
        invitee_id: int,
        invitee_name: str,
        problem: str,
        codes_seen: list[str],
    ) -> bool:
        """Keep in the audit log what was wrong with an application the worker did not
        approve: the applicant only ever hears the neutral `invites.deny_reason`.
        Once per applicant (a left application is read again every poll); codes are
        bearer secrets, so only the tried one's prefix is kept. True when written."""
        with self.db.session() as session:
            seen = session.scalars(
                select(InviteAuditRow.id).where(
                    InviteAuditRow.action == "application_refused",
                    InviteAuditRow.person_id == invitee_id,
                )
            ).first()
            if seen is not None:
                return False
            self._audit(
                session,
                "warden",
                "application_refused",
                invitee_id,
                application_id=application_id,
                invitee=invitee_name,
                problem=problem,
                codes_in_answer=len(codes_seen),
                tried=short_code(codes_seen[0]) if codes_seen else None,
            )
            return True

    def claim_approval(
        self, invitee_id: int, worker: str, now: datetime, stale: timedelta = timedelta(minutes=5)
    ) -> bool:
        """True for exactly one worker: the one that will call Lemmy's approve."""
        with self.db.session() as session:
            done = session.execute(
                update(InviteEdgeRow)
                .where(
                    InviteEdgeRow.invitee_id == invitee_id,
                    InviteEdgeRow.approved_at.is_(None),
                    (InviteEdgeRow.approving.is_(None))
                    | (InviteEdgeRow.approving_at < now - stale),
                )
                .values(approving=worker, approving_at=now)
            )
            return done.rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def approved(self, invitee_id: int, now: datetime) -> None:
        with self.db.session() as session:
            session.execute(
                update(InviteEdgeRow)
                .where(InviteEdgeRow.invitee_id == invitee_id)
                .values(approved_at=now, approving=None)
            )
            edge = session.get(InviteEdgeRow, invitee_id)
            self._audit(
                session,
                "warden",
                "approve",
                edge.inviter_id if edge else None,
                invitee_id=invitee_id,
            )

    def release_claim(self, invitee_id: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(InviteEdgeRow)
                .where(InviteEdgeRow.invitee_id == invitee_id)
                .values(approving=None, approving_at=None)
            )

    def add_edge(
        self, invitee_id: int, invitee_name: str, inviter_id: int, inviter_name: str, now: datetime
    ) -> bool:
        """An edge learnt from Lemmy 1.0 (`invited_by_local_user_id`); False when known."""
        with self.db.session() as session:
            if session.get(InviteEdgeRow, invitee_id) is not None:
                return False
            self._row(session, inviter_id, inviter_name)
            session.add(
                InviteEdgeRow(
                    invitee_id=invitee_id,
                    invitee_name=invitee_name,
                    inviter_id=inviter_id,
                    created_at=now,
                    approved_at=now,
                )
            )
            self._audit(
                session, "lemmy", "edge", inviter_id, invitee=invitee_name, invitee_id=invitee_id
            )
            return True
