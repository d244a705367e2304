"""The invite ledger's tables and its atomic operations.

Every change that matters under concurrency is one conditional UPDATE whose
row count says who won, inside a transaction that also writes the audit row:

- spending an invite: `balance = balance - 1 WHERE balance > 0`;
- redeeming a code: `uses = uses + 1 WHERE uses < max_uses AND not revoked AND
  not expired`, together with the tree edge, whose invitee is the primary key
  (an account is invited once) and whose application id is unique;
- claiming an approval: `approving = token WHERE approved_at IS NULL AND
  approving IS NULL` (or a stale claim), so two workers never both approve.

That works the same on SQLite (one writer at a time) and PostgreSQL (row
locks), and the tests run it on both. The rules themselves (refill, strikes,
refusals) are `membership/invites.py`; this module only keeps state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from warden.errors import InviteRefused
from warden.membership import invites as rules
from warden.membership.invites import Account, Invite, InvitePolicy, Rights, StrikeStep
from warden.membership.requirements import UserFacts
from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database


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


@dataclass(frozen=True)
class Redemption:
    invitee_id: int
    inviter_id: int
    inviter_name: str
    code: str
    application_id: int | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    person_id: int | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class StrikeOutcome:
    inviter: Account
    fired: tuple[StrikeStep, ...]


def _account(row: InviteAccountRow) -> Account:
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


def _invite(row: InviteCodeRow) -> Invite:
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


class InviteStore:
    """The ledger. Blocking: call from a worker thread in async code."""

    def __init__(self, database: Database, policy: InvitePolicy) -> None:
        self.db = database
        self.policy = policy

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _audit(
        session: Session, actor: str, action: str, person_id: int | None, **detail: Any
    ) -> None:
        session.add(
            InviteAuditRow(
                actor=actor,
                action=action,
                person_id=person_id,
                detail=json.loads(json.dumps(detail, default=str)),
            )
        )

    @staticmethod
    def _row(session: Session, person_id: int, name: str | None = None) -> InviteAccountRow:
        row = session.get(InviteAccountRow, person_id, with_for_update=True)
        if row is None:
            try:
                with session.begin_nested():  # a twin may create it at the same moment
                    row = InviteAccountRow(person_id=person_id, name=name or f"#{person_id}")
                    session.add(row)
            except IntegrityError:
                row = session.get(
                    InviteAccountRow, person_id, with_for_update=True, populate_existing=True
                )
                assert row is not None
        elif name and row.name != name:
            row.name = name
        return row

    def _refill_row(
        self, session: Session, row: InviteAccountRow, facts: UserFacts | None, now: datetime
    ) -> None:
        eligible = facts is not None and rules.is_eligible(self.policy, facts, now)
        before = _account(row)
        after, granted = rules.refill(before, self.policy, now, eligible=eligible)
        if after.granted_through != row.granted_through:
            row.granted_through = after.granted_through
        if granted:
            row.balance = after.balance
            row.updated_at = now
            self._audit(
                session,
                "warden",
                "refill",
                row.person_id,
                granted=granted,
                balance=after.balance,
                period=after.granted_through,
            )

    # -- reading -------------------------------------------------------------

    def account(self, facts: UserFacts, now: datetime) -> Account:
        """The account of a signed-in user, refilled first (so a balance is never stale)."""
        with self.db.session() as session:
            row = self._row(session, facts.person_id, facts.name)
            self._refill_row(session, row, facts, now)
            return _account(row)

    def find(self, name_or_id: str) -> Account | None:
        with self.db.session() as session:
            if name_or_id.isdigit():
                row = session.get(InviteAccountRow, int(name_or_id))
            else:
                row = session.scalars(
                    select(InviteAccountRow).where(InviteAccountRow.name == name_or_id)
                ).first()
            return _account(row) if row else None

    def invites_of(self, person_id: int) -> list[Invite]:
        with self.db.session() as session:
            rows = session.scalars(
                select(InviteCodeRow)
                .where(InviteCodeRow.inviter_id == person_id)
                .order_by(InviteCodeRow.created_at.desc(), InviteCodeRow.id.desc())
            )
            return [_invite(r) for r in rows]

    def invite(self, code: str) -> Invite | None:
        with self.db.session() as session:
            row = session.scalars(select(InviteCodeRow).where(InviteCodeRow.code == code)).first()
            return _invite(row) if row else None

    def invitees_of(self, person_id: int) -> list[tuple[int, str, datetime]]:
        with self.db.session() as session:
            rows = session.execute(
                select(
                    InviteEdgeRow.invitee_id, InviteEdgeRow.invitee_name, InviteEdgeRow.created_at
                )
                .where(InviteEdgeRow.inviter_id == person_id)
                .order_by(InviteEdgeRow.created_at)
            )
            return [(int(a), str(b), c) for a, b, c in rows]

    def inviter_of(self, invitee_id: int) -> int | None:
        with self.db.session() as session:
            edge = session.get(InviteEdgeRow, invitee_id)
            return edge.inviter_id if edge else None

    def tree(self, root: int | None = None) -> list[rules.TreeNode]:
        """The invite tree (under `root`, or all of it), with ban marks and strikes."""
        with self.db.session() as session:
            edges = [
                (int(a), int(b))
                for a, b in session.execute(
                    select(InviteEdgeRow.invitee_id, InviteEdgeRow.inviter_id)
                )
            ]
            names = {
                int(a): str(b)
                for a, b in session.execute(
                    select(InviteEdgeRow.invitee_id, InviteEdgeRow.invitee_name)
                )
            }
            accounts = {r.person_id: r for r in session.scalars(select(InviteAccountRow))}
        names |= {pid: row.name for pid, row in accounts.items()}
        trees = rules.build_tree(edges, names, root)
        for tree in trees:
            for node in tree.walk():
                row = accounts.get(node.person_id)
                if row is not None:
                    node.banned = row.banned_at is not None
                    node.ban_reason = row.ban_reason
                    node.strikes = row.strikes
        return trees

    def audit(self, person_id: int | None = None, limit: int = 100) -> list[AuditEntry]:
        with self.db.session() as session:
            query = select(InviteAuditRow).order_by(InviteAuditRow.id.desc()).limit(limit)
            if person_id is not None:
                query = query.where(InviteAuditRow.person_id == person_id)
            return [
                AuditEntry(r.at, r.actor, r.action, r.person_id, dict(r.detail))
                for r in session.scalars(query)
            ]

    def review_queue(self) -> list[Account]:
        with self.db.session() as session:
            rows = session.scalars(
                select(InviteAccountRow).where(InviteAccountRow.review_queued.is_(True))
            )
            return [_account(r) for r in rows]

    # -- spending and revoking -----------------------------------------------

    def spend(
        self, facts: UserFacts, now: datetime, *, code: str | None = None, native: bool = False
    ) -> Invite:
        """Take one invite from the user's balance and issue a code (or record a native one).

        Raises InviteRefused with the reason in words (rights, eligibility, balance)."""
        with self.db.session() as session:
            row = self._row(session, facts.person_id, facts.name)
            self._refill_row(session, row, facts, now)
            refusal = rules.creation_refusal(_account(row), self.policy, now, facts)
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
            invite = rules.issue(_account(row), self.policy, now, code)
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
                code=_short(invite.code),
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
            self._audit(session, actor, "refund", person_id, code=_short(code), why=why)

    def revoke(self, code: str, person_id: int | None, now: datetime, actor: str) -> int:
        """Revoke a code (its owner's, unless `person_id` is None: an admin); returns the
        invites returned to the owner's balance."""
        with self.db.session() as session:
            row = session.scalars(
                select(InviteCodeRow).where(InviteCodeRow.code == code).with_for_update()
            ).first()
            if row is None or (person_id is not None and row.inviter_id != person_id):
                raise InviteRefused("There is no such invite of yours.", "unknown_invite")
            refund = rules.refund_on_revoke(_invite(row), now)
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
                session, actor, "revoke", row.inviter_id, code=_short(code), returned=refund
            )
            return refund

    # -- redemption and approval ---------------------------------------------

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
        try:
            return self._redeem(code, invitee_id, invitee_name, application_id, now)
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

    def _redeem(
        self,
        code: str,
        invitee_id: int,
        invitee_name: str,
        application_id: int | None,
        now: datetime,
    ) -> Redemption:
        with self.db.session() as session:
            if session.get(InviteEdgeRow, invitee_id) is not None:
                raise InviteRefused("this account was already invited", "already_invited")
            found = session.scalars(select(InviteCodeRow).where(InviteCodeRow.code == code)).first()
            refusal = rules.redemption_refusal(_invite(found) if found else None, now)
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
                    invitee_id=invitee_id,
                    invitee_name=invitee_name,
                    inviter_id=found.inviter_id,
                    code_id=found.id,
                    application_id=application_id,
                    created_at=now,
                )
            )
            inviter = session.get(InviteAccountRow, found.inviter_id)
            self._audit(
                session,
                "warden",
                "redeem",
                found.inviter_id,
                code=_short(code),
                invitee=invitee_name,
                invitee_id=invitee_id,
                application_id=application_id,
            )
            session.flush()  # an IntegrityError here: the same applicant, concurrently
            return Redemption(
                invitee_id, found.inviter_id, inviter.name if inviter else "", code, application_id
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
                tried=_short(codes_seen[0]) if codes_seen else None,
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

    def set_local_user(self, person_id: int, name: str, local_user_id: int) -> None:
        with self.db.session() as session:
            row = self._row(session, person_id, name)
            row.local_user_id = local_user_id

    # -- accountability ------------------------------------------------------

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
            after, fired = rules.strike(_account(inviter), self.policy, now, reason)
            session.add(
                InviteStrikeRow(
                    inviter_id=inviter.person_id,
                    invitee_id=invitee_id,
                    reason=reason,
                    created_at=now,
                )
            )
            _apply(inviter, after, now)
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

    # -- admin -----------------------------------------------------------------

    def grant(self, person_id: int, name: str, count: int, actor: str, reason: str) -> Account:
        with self.db.session() as session:
            row = self._row(session, person_id, name)
            row.balance = max(0, row.balance + count)
            self._audit(
                session, actor, "grant", person_id, count=count, balance=row.balance, reason=reason
            )
            return _account(row)

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
            return _account(row)

    # -- cursors -------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        with self.db.session() as session:
            row = session.get(InviteCursorRow, name)
            return row.value if row else None

    def set_cursor(self, name: str, value: str) -> None:
        with self.db.session() as session:
            row = session.get(InviteCursorRow, name)
            if row is None:
                session.add(InviteCursorRow(name=name, value=value))
            else:
                row.value = value


def _apply(row: InviteAccountRow, account: Account, now: datetime) -> None:
    row.strikes = account.strikes
    row.rights = account.rights.value
    row.rights_reason = account.rights_reason
    row.suspended_until = account.suspended_until
    row.review_queued = account.review_queued
    row.updated_at = now


def _short(code: str) -> str:
    """Codes are bearer secrets: the audit log keeps a prefix, enough to tell them apart."""
    return code[:6] + "…"
