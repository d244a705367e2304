"""The invite ledger's base: the database and policy, the audit log, accounts, reads, cursors.

Every concern of the ledger (spending, redemption, accountability) derives
from `InviteLedger`, so each writes its audit rows and finds or creates
accounts the same way; `InviteStore` joins them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warden.membership import invites as rules
from warden.membership.invites import Account, Invite, InvitePolicy
from warden.membership.requirements import UserFacts
from warden.store.database import Database
from warden.store.invites.tables import (
    InviteAccountRow,
    InviteAuditRow,
    InviteCodeRow,
    InviteCursorRow,
    InviteEdgeRow,
    to_account,
    to_invite,
)


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    person_id: int | None
    detail: dict[str, Any]


def short_code(code: str) -> str:
    """Codes are bearer secrets: the audit log keeps a prefix, enough to tell them apart."""
    return code[:6] + "…"


class InviteLedger:
    """Reads of the ledger, and what every writer shares. Blocking: call from a worker
    thread in async code."""

    def __init__(self, database: Database, policy: InvitePolicy) -> None:
        self.db = database
        self.policy = policy

    # -- shared by the writers ------------------------------------------------

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
        before = to_account(row)
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
            return to_account(row)

    def find(self, name_or_id: str) -> Account | None:
        with self.db.session() as session:
            if name_or_id.isdigit():
                row = session.get(InviteAccountRow, int(name_or_id))
            else:
                row = session.scalars(
                    select(InviteAccountRow).where(InviteAccountRow.name == name_or_id)
                ).first()
            return to_account(row) if row else None

    def invites_of(self, person_id: int) -> list[Invite]:
        with self.db.session() as session:
            rows = session.scalars(
                select(InviteCodeRow)
                .where(InviteCodeRow.inviter_id == person_id)
                .order_by(InviteCodeRow.created_at.desc(), InviteCodeRow.id.desc())
            )
            return [to_invite(r) for r in rows]

    def invite(self, code: str) -> Invite | None:
        with self.db.session() as session:
            row = session.scalars(select(InviteCodeRow).where(InviteCodeRow.code == code)).first()
            return to_invite(row) if row else None

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
            return [to_account(r) for r in rows]

    # -- accounts and cursors --------------------------------------------------

    def set_local_user(self, person_id: int, name: str, local_user_id: int) -> None:
        with self.db.session() as session:
            row = self._row(session, person_id, name)
            row.local_user_id = local_user_id

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
