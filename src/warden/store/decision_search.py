"""Reading the decisions log by filter: what `warden decisions list|tail` asks for.

Kept apart from store/decisions.py (writing and the row mapping) so the log's
search grows without the table's module growing with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from warden.store.decisions import DecisionLog, DecisionRecord, DecisionRow, row_to_record


@dataclass(frozen=True)
class DecisionFilter:
    """What `warden decisions list|tail` asks the log for; every field optional.

    `account` matches the attributed account or the `/api/v1/scan` uploader;
    `sha256` a whole digest or a prefix of at least 8 hex digits; `reason` a
    machine code among the decision's reasons (checked after reading, since
    reasons are JSON)."""

    decision: str | None = None
    source: str | None = None
    reason: str | None = None
    account: str | None = None
    sha256: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> Any:
        query = select(DecisionRow)
        if self.decision is not None:
            query = query.where(DecisionRow.decision == self.decision)
        if self.source is not None:
            query = query.where(DecisionRow.source == self.source)
        if self.account is not None:
            query = query.where(
                or_(DecisionRow.account == self.account, DecisionRow.uploader == self.account)
            )
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if len(digest) == 64:
                query = query.where(DecisionRow.sha256 == digest)
            else:
                query = query.where(DecisionRow.sha256.startswith(digest, autoescape=True))
        if self.since is not None:
            query = query.where(DecisionRow.created_at >= self.since)
        if self.until is not None:
            query = query.where(DecisionRow.created_at < self.until)
        return query

    def admits(self, record: DecisionRecord) -> bool:
        return self.reason is None or any(r.code == self.reason for r in record.verdict.reasons)


def search(
    log: DecisionLog,
    where: DecisionFilter,
    *,
    limit: int,
    after_id: int | None = None,
    newest_first: bool = True,
    batch: int = 500,
) -> list[DecisionRecord]:
    """Up to `limit` decisions matching `where`: newest first, or oldest first after
    `after_id` (what `tail` follows). Read in batches, so a reason filter over a large
    log never loads it whole."""
    out: list[DecisionRecord] = []
    cursor = after_id
    while len(out) < limit:
        query = where.query()
        if newest_first:
            if cursor is not None:
                query = query.where(DecisionRow.id < cursor)
            query = query.order_by(DecisionRow.id.desc())
        else:
            if cursor is not None:
                query = query.where(DecisionRow.id > cursor)
            query = query.order_by(DecisionRow.id)
        with log.database.session() as session:
            rows = [row_to_record(r) for r in session.scalars(query.limit(batch))]
        if not rows:
            break
        out.extend(r for r in rows if where.admits(r))
        cursor = rows[-1].id
    return out[:limit]
