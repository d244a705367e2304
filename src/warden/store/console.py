"""The console's own state: sign-ins, the audit of every action, the switch it set.

- **Sessions** are rows, so a restart signs nobody out. The table holds the
  SHA-256 of the cookie value, never the value, and never the Lemmy token
  (console actions use `lemmy.bot_token`): a copy of the database signs no
  one in. A session remembers the role it was granted at sign-in (admin, or
  moderator of some communities) until it expires.
- **Audit**: one row per console action (who, what, on what, why, and how it
  went, with the steps in `detail`), written in the same call that acts.
- **State**: the uploads switch the console set, so a restart restores it.

The Now page's per-minute counts are read here too (`decision_counts`,
`top_reasons`): counted by the database, never whole decisions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Integer, String, Text, delete, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database
from warden.store.decisions import DecisionRow, not_echo


class ConsoleSessionRow(Base):
    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    communities: Mapped[list[int]] = mapped_column(JSON)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ConsoleAuditRow(Base):
    __tablename__ = "console_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class ConsoleStateRow(Base):
    __tablename__ = "console_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(255))


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in admin or moderator, as the console trusts them until `expires_at`."""

    person_id: int
    name: str
    role: str  # "admin" | "moderator"
    communities: tuple[int, ...]
    csrf: str
    expires_at: datetime

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MinuteCount:
    """How many decisions of one outcome and source one minute saw."""

    minute: datetime
    decision: str
    source: str
    count: int


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()


class ConsoleStore:
    """Sessions, audit and state. Blocking: call from a worker thread in async code."""

    def __init__(self, database: Database) -> None:
        self.db = database

    # -- sessions ----------------------------------------------------------------

    def create_session(self, sid: str, session: ConsoleSession, now: datetime) -> None:
        with self.db.session() as s:
            s.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now))
            s.add(
                ConsoleSessionRow(
                    id_hash=_digest(sid),
                    person_id=session.person_id,
                    name=session.name,
                    role=session.role,
                    communities=list(session.communities),
                    csrf=session.csrf,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )

    def session(self, sid: str | None, now: datetime) -> ConsoleSession | None:
        """The live session behind a cookie value; None when unknown or expired."""
        if not sid:
            return None
        with self.db.session() as s:
            row = s.get(ConsoleSessionRow, _digest(sid))
            if row is None or row.expires_at <= now:
                return None
            return ConsoleSession(
                row.person_id,
                row.name,
                row.role,
                tuple(int(c) for c in row.communities),
                row.csrf,
                row.expires_at,
            )

    def drop_session(self, sid: str | None) -> None:
        if sid:
            with self.db.session() as s:
                s.execute(
                    delete(ConsoleSessionRow).where(ConsoleSessionRow.id_hash == _digest(sid))
                )

    # -- audit ---------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        reason: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        with self.db.session() as s:
            row = ConsoleAuditRow(
                actor=actor,
                action=action,
                target=target[:255],
                reason=reason,
                outcome=outcome,
                detail=json.loads(json.dumps(detail or {}, default=str)),
            )
            s.add(row)
            s.flush()
            return row.id

    def audits(self, limit: int = 50, target: str | None = None) -> list[AuditRecord]:
        query = select(ConsoleAuditRow).order_by(ConsoleAuditRow.id.desc()).limit(limit)
        if target is not None:
            query = query.where(ConsoleAuditRow.target == target)
        with self.db.session() as s:
            return [
                AuditRecord(r.id, r.at, r.actor, r.action, r.target, r.reason, r.outcome, r.detail)
                for r in s.scalars(query)
            ]

    def handled(self, decision_ids: list[int]) -> dict[int, str]:
        """Which of these decisions an admin already approved or flagged in full (id ->
        action); a flag with a failed step stays in the queue until a retry finishes it."""
        targets = {f"decision:{i}": i for i in decision_ids}
        query = (
            select(ConsoleAuditRow.target, ConsoleAuditRow.action)
            .where(
                ConsoleAuditRow.target.in_(list(targets)),
                ConsoleAuditRow.action.in_(["approve", "flag"]),
                ConsoleAuditRow.outcome == "ok",
            )
            .order_by(ConsoleAuditRow.id)
        )
        with self.db.session() as s:
            return {targets[t]: a for t, a in s.execute(query)}

    # -- state ---------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        with self.db.session() as s:
            row = s.get(ConsoleStateRow, key)
            return row.value if row else None

    def set_state(self, key: str, value: str, by: str, now: datetime) -> None:
        with self.db.session() as s:
            row = s.get(ConsoleStateRow, key)
            if row is None:
                s.add(ConsoleStateRow(key=key, value=value, updated_at=now, updated_by=by))
            else:
                row.value, row.updated_at, row.updated_by = value, now, by

    # -- what the Now page counts ----------------------------------------------------

    def _minute(self) -> ColumnElement[str]:
        """A decision's minute as 'YYYY-MM-DD HH:MM' in UTC, on either backend."""
        if self.db.engine.dialect.name == "postgresql":
            utc = func.timezone("UTC", DecisionRow.created_at)
            return func.to_char(func.date_trunc("minute", utc), "YYYY-MM-DD HH24:MI")
        return func.strftime("%Y-%m-%d %H:%M", DecisionRow.created_at)

    def decision_counts(self, since: datetime) -> list[MinuteCount]:
        """Decisions per minute, outcome and source since `since`, counted by the
        database: a flood's million rows are never read into Warden."""
        minute = self._minute().label("minute")
        query = (
            select(minute, DecisionRow.decision, DecisionRow.source, func.count())
            .where(DecisionRow.created_at >= since, not_echo())
            .group_by(minute, DecisionRow.decision, DecisionRow.source)
        )
        with self.db.session() as s:
            return [
                MinuteCount(
                    datetime.strptime(str(m), "%Y-%m-%d %H:%M").replace(tzinfo=UTC),
                    str(decision),
                    str(source),
                    int(n),
                )
                for m, decision, source, n in s.execute(query)
            ]

    def top_reasons(self, since: datetime, limit: int = 8) -> list[tuple[str, int]]:
        """The first reason code of decisions that were not accepted, most frequent first."""
        code = DecisionRow.reasons[0]["code"].as_string().label("code")
        query = (
            select(code, func.count().label("n"))
            .where(DecisionRow.created_at >= since, DecisionRow.decision != "accept", not_echo())
            .group_by(code)
            .order_by(func.count().desc(), code)
            .limit(limit)
        )
        with self.db.session() as s:
            return [(str(c), int(n)) for c, n in s.execute(query) if c]

    def review_ids(self, limit: int, before: int | None = None) -> list[int]:
        """Ids of `review` decisions, newest first (paged by `before`)."""
        query = (
            select(DecisionRow.id)
            .where(DecisionRow.decision == "review", not_echo())
            .order_by(DecisionRow.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(DecisionRow.id < before)
        with self.db.session() as s:
            return [int(i) for i in s.scalars(query)]

    def decision_ids_of(self, uploader: str, limit: int = 100) -> list[int]:
        query = (
            select(DecisionRow.id)
            .where(
                or_(DecisionRow.uploader == uploader, DecisionRow.account == uploader), not_echo()
            )
            .order_by(DecisionRow.id.desc())
            .limit(limit)
        )
        with self.db.session() as s:
            return [int(i) for i in s.scalars(query)]
