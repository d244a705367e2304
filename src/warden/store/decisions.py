"""The decisions log: every verdict the media gate reaches, written before it is answered.

A row says who (source, uploader), what (SHA-256, PDQ, format, size), why
(reasons with their codes and details, label scores, bank matches) and under
which model and policy (`config_version`, a digest of the effective policy
settings). `verdict_to_row` and `row_to_record` are the only places a `Verdict`
meets the table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

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
    )


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
    ) -> int:
        """Write one decision and return its id (raises on any database error)."""
        row = verdict_to_row(
            verdict,
            source=source,
            uploader=uploader,
            config_version=config_version,
            evidence_id=evidence_id,
        )
        with self.database.session() as session:
            session.add(row)
            session.flush()
            return row.id

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

    def by_sha256(self, sha256: str) -> Sequence[DecisionRecord]:
        query = select(DecisionRow).where(DecisionRow.sha256 == sha256).order_by(DecisionRow.id)
        with self.database.session() as session:
            return [row_to_record(r) for r in session.scalars(query)]


def labels_of(record: DecisionRecord) -> Mapping[str, float]:
    return record.verdict.labels
