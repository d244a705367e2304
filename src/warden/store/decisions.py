"""The decisions log: every verdict the media gate reaches, written before it is answered.

A row says who (source, uploader), what (SHA-256, PDQ, format, size), why
(reasons with their codes and details, label scores, bank matches) and under
which model and policy (`config_version`, a digest of the effective policy
settings). `verdict_to_row` and `row_to_record` are the only places a `Verdict`
meets the table.

Attribution (issue 18): for a local upload through the ingest proxy, the Lemmy
account (`account_id`, `account`), the uploader's address (`client_address`), the
pict-rs `alias` once pict-rs stored the file, and on the validation hook's row the
proxy decision it answered from (`linked_decision_id`). The proxy knows the
uploader; pict-rs's hook only sees bytes, so the link is what ties the two.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, BigInteger, ColumnElement, Integer, String, or_, select, update
from sqlalchemy.orm import Mapped, aliased, mapped_column

from warden.domain.verdict import Decision, FrameHash, MediaInfo, Reason, Verdict
from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(8), index=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    labels: Mapped[dict[str, float]] = mapped_column(JSON)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    frames: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    media_format: Mapped[str | None] = mapped_column(String(16))
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(128))
    config_version: Mapped[str] = mapped_column(String(64))
    uploader: Mapped[str | None] = mapped_column(String(255))
    evidence_id: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    account: Mapped[str | None] = mapped_column(String(255), index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    alias: Mapped[str | None] = mapped_column(String(255), index=True)
    linked_decision_id: Mapped[int | None] = mapped_column(Integer, index=True)


def not_echo() -> ColumnElement[bool]:
    """True for a row that is a decision of its own: not the validation hook's echo of
    the proxy's decision on the same bytes (a hook row with a link and the linked row's
    SHA-256). Counts, the review queue and people pages use it, so an upload is one
    decision there; a hook row that scanned re-encoded bytes itself still counts."""
    origin = aliased(DecisionRow)
    echo = (
        select(origin.id)
        .where(origin.id == DecisionRow.linked_decision_id, origin.sha256 == DecisionRow.sha256)
        .exists()
    )
    return ~echo


@dataclass(frozen=True)
class Attribution:
    """Who uploaded (or tried to upload) the media, as far as Warden could tell.

    `account_id`/`account`: the Lemmy person the upload's own login names (read by
    the ingest proxy); `client_address`: where the upload came from; `alias`: the
    name pict-rs stored it under; `linked_decision_id`: the proxy decision a
    validation-hook row answered from."""

    account_id: int | None = None
    account: str | None = None
    client_address: str | None = None
    alias: str | None = None
    linked_decision_id: int | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account": self.account,
            "client_address": self.client_address,
            "alias": self.alias,
            "linked_decision_id": self.linked_decision_id,
        }


NOBODY = Attribution()


@dataclass(frozen=True)
class DecisionRecord:
    """One logged decision: the verdict and the facts around it."""

    id: int
    created_at: datetime
    source: str
    uploader: str | None
    config_version: str
    evidence_id: str | None
    verdict: Verdict
    account_id: int | None = None
    account: str | None = None
    client_address: str | None = None
    alias: str | None = None
    linked_decision_id: int | None = None

    @property
    def attribution(self) -> Attribution:
        return Attribution(
            self.account_id,
            self.account,
            self.client_address,
            self.alias,
            self.linked_decision_id,
        )


def _media_dict(info: MediaInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "format": info.format,
        "mime": info.mime,
        "width": info.width,
        "height": info.height,
        "frame_count": info.frame_count,
        "sampled_frames": info.sampled_frames,
    }


def verdict_to_row(
    verdict: Verdict,
    *,
    source: str,
    uploader: str | None,
    config_version: str,
    evidence_id: str | None,
    created_at: datetime | None = None,
    attribution: Attribution = NOBODY,
) -> DecisionRow:
    """The table row for a verdict (timings are not kept: they are metrics)."""
    return DecisionRow(
        created_at=created_at or utcnow(),
        source=source,
        sha256=verdict.sha256 or None,
        pdq=verdict.pdq,
        pdq_quality=verdict.pdq_quality,
        decision=verdict.decision.value,
        reasons=[r.as_dict() for r in verdict.reasons],
        labels={k: float(v) for k, v in verdict.labels.items()},
        matches=[dict(m) for m in verdict.matches],
        frames=[{"frame": f.frame, "pdq": f.pdq, "quality": f.quality} for f in verdict.frames],
        media_format=verdict.media.format if verdict.media else None,
        media=_media_dict(verdict.media),
        size=verdict.size,
        model=verdict.model,
        config_version=config_version,
        uploader=uploader,
        evidence_id=evidence_id,
        **attribution.columns(),
    )


def row_to_verdict(row: DecisionRow) -> Verdict:
    return Verdict(
        decision=Decision(row.decision),
        reasons=tuple(
            Reason(r["code"], r["message"], MappingProxyType(dict(r.get("detail") or {})))
            for r in row.reasons
        ),
        sha256=row.sha256 or "",
        size=row.size,
        media=MediaInfo(**row.media) if row.media else None,
        frames=tuple(FrameHash(f["frame"], f["pdq"], f["quality"]) for f in row.frames),
        labels=MappingProxyType(dict(row.labels)),
        model=row.model,
        matches=tuple(MappingProxyType(dict(m)) for m in row.matches),
    )


def row_to_record(row: DecisionRow) -> DecisionRecord:
    return DecisionRecord(
        id=row.id,
        created_at=row.created_at,
        source=row.source,
        uploader=row.uploader,
        config_version=row.config_version,
        evidence_id=row.evidence_id,
        verdict=row_to_verdict(row),
        account_id=row.account_id,
        account=row.account,
        client_address=row.client_address,
        alias=row.alias,
        linked_decision_id=row.linked_decision_id,
    )


@dataclass(frozen=True)
class DecisionEntry:
    """One decision waiting to be written (`DecisionLog.record_many`)."""

    verdict: Verdict
    source: str
    config_version: str
    uploader: str | None = None
    evidence_id: str | None = None
    attribution: Attribution = NOBODY

    def facts(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "uploader": self.uploader,
            "config_version": self.config_version,
            "evidence_id": self.evidence_id,
            "attribution": self.attribution,
        }


class DecisionLog:
    """Append and read decisions. Blocking: call from a worker thread in async code."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record(
        self,
        verdict: Verdict,
        *,
        source: str,
        uploader: str | None = None,
        config_version: str,
        evidence_id: str | None = None,
        attribution: Attribution = NOBODY,
    ) -> int:
        """Write one decision and return its id (raises on any database error)."""
        row = verdict_to_row(
            verdict,
            source=source,
            uploader=uploader,
            config_version=config_version,
            evidence_id=evidence_id,
            attribution=attribution,
        )
        with self.database.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def record_many(self, entries: Sequence[DecisionEntry]) -> list[int]:
        """Write several decisions in ONE transaction (group commit) and return their
        ids in order; all or none are written (raises on any database error).

        Concurrent requests' rows share a commit instead of queueing for the write
        lock one by one: on SQLite each commit is an fsync and the lock a single
        writer, so twenty rows written alone cost twenty of each."""
        rows = [verdict_to_row(e.verdict, **e.facts()) for e in entries]
        with self.database.session() as session:
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def get(self, decision_id: int) -> DecisionRecord | None:
        with self.database.session() as session:
            row = session.get(DecisionRow, decision_id)
            return None if row is None else row_to_record(row)

    def recent(self, since: datetime | None = None, limit: int = 100) -> list[DecisionRecord]:
        """Newest first; only those at or after `since` when given."""
        query = select(DecisionRow).order_by(DecisionRow.id.desc()).limit(limit)
        if since is not None:
            query = query.where(DecisionRow.created_at >= since)
        with self.database.session() as session:
            return [row_to_record(r) for r in session.scalars(query)]

    def since(self, since: datetime, batch: int = 1000) -> Iterator[DecisionRecord]:
        """Every decision at or after `since`, oldest first, read in batches."""
        last = 0
        while True:
            query = (
                select(DecisionRow)
                .where(DecisionRow.created_at >= since, DecisionRow.id > last)
                .order_by(DecisionRow.id)
                .limit(batch)
            )
            with self.database.session() as session:
                rows = [row_to_record(r) for r in session.scalars(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def set_alias(self, decision_id: int, alias: str) -> int:
        """Name the pict-rs alias on a decision and on the hook rows linked to it, once
        pict-rs answered 201; how many rows were updated."""
        query = (
            update(DecisionRow)
            .where(
                or_(DecisionRow.id == decision_id, DecisionRow.linked_decision_id == decision_id)
            )
            .values(alias=alias)
        )
        with self.database.session() as session:
            return int(session.execute(query).rowcount)  # type: ignore[attr-defined]

    def linked_to(self, decision_id: int) -> list[DecisionRecord]:
        """The validation hook's rows that answered from the proxy's `decision_id`."""
        query = (
            select(DecisionRow)
            .where(DecisionRow.linked_decision_id == decision_id)
            .order_by(DecisionRow.id)
        )
        with self.database.session() as session:
            return [row_to_record(r) for r in session.scalars(query)]

    def by_sha256(self, sha256: str) -> Sequence[DecisionRecord]:
        query = select(DecisionRow).where(DecisionRow.sha256 == sha256).order_by(DecisionRow.id)
        with self.database.session() as session:
            return [row_to_record(r) for r in session.scalars(query)]


def labels_of(record: DecisionRecord) -> Mapping[str, float]:
    return record.verdict.labels
