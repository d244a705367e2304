"""Keypoint features of bank entries whose picture Warden held, kept in the database.

When Warden flags a picture it has (a file, the evidence of a decision), the
picture's ORB keypoints (positions and descriptors, media/keypoints.py) are
stored here once, tied to the bank entry that banked the picture, so every
replica and every restart has them without the picture: the picture itself is
never stored for this. A row counts while its entry is live: an entry marked
removed (`warden hashes remove`, an unflag) stops its features matching, and a
re-activated entry brings them back; deleting the bank deletes the entry and,
by the foreign key, its features. The plain PDQ banks stay bit-exact and
exchangeable: features are Warden's own and never leave it (not exported, not in
feeds). The matchers follow this table by id and the bank change log
(`hash_events`; services/keypoint_sync.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.banks import BigId, EntryRow, EventRow
from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database

#: Bytes per ORB descriptor.
DESCRIPTOR_BYTES = 32


class KeypointFeatureRow(Base):
    __tablename__ = "keypoint_features"
    __table_args__ = (UniqueConstraint("entry_id", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("hash_entries.id", ondelete="CASCADE"),
        index=True,
    )
    sha256: Mapped[str] = mapped_column(String(64))  # the picture the features describe
    count: Mapped[int] = mapped_column(Integer)  # keypoints
    points: Mapped[bytes] = mapped_column(LargeBinary)  # (count, 2) float32, little-endian
    descriptors: Mapped[bytes] = mapped_column(LargeBinary)  # (count, 32) uint8
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class StoredFeatures:
    """One stored row, with its entry's bank and hash."""

    id: int
    entry_id: int
    bank_id: int
    value: str
    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8


def _decode(row: KeypointFeatureRow, bank_id: int, value: str) -> StoredFeatures:
    points = np.frombuffer(row.points, dtype="<f4").reshape(row.count, 2).astype(np.float32)
    descriptors = np.frombuffer(row.descriptors, dtype=np.uint8).reshape(
        row.count, DESCRIPTOR_BYTES
    )
    return StoredFeatures(row.id, row.entry_id, bank_id, value, points, descriptors.copy())


class KeypointFeatureStore:
    """Stored features of held pictures. Blocking; call from threads in async code."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def save(self, entry_id: int, sha256: str, points: np.ndarray, descriptors: np.ndarray) -> bool:
        """Keep a picture's features under a bank entry; False when already kept."""
        points = np.ascontiguousarray(points, dtype="<f4")
        descriptors = np.ascontiguousarray(descriptors, dtype=np.uint8)
        if points.shape != (len(points), 2) or descriptors.shape != (
            len(points),
            DESCRIPTOR_BYTES,
        ):
            raise ValueError("features: (n, 2) points and (n, 32) descriptors")
        with self.db.session() as s:
            known = s.scalar(
                select(KeypointFeatureRow.id).where(
                    KeypointFeatureRow.entry_id == entry_id, KeypointFeatureRow.sha256 == sha256
                )
            )
            if known is not None:
                return False
            s.add(
                KeypointFeatureRow(
                    entry_id=entry_id,
                    sha256=sha256,
                    count=len(points),
                    points=points.tobytes(),
                    descriptors=descriptors.tobytes(),
                )
            )
            return True

    def _live(self, *where: object) -> list[StoredFeatures]:
        with self.db.session() as s:
            rows = s.execute(
                select(KeypointFeatureRow, EntryRow.bank_id, EntryRow.value)
                .join(EntryRow, EntryRow.id == KeypointFeatureRow.entry_id)
                .where(EntryRow.removed_at.is_(None), *where)  # type: ignore[arg-type]
                .order_by(KeypointFeatureRow.id)
            ).all()
            return [_decode(r, int(b), v) for r, b, v in rows]

    def live(self, after: int = 0) -> list[StoredFeatures]:
        """Features of live entries stored after row `after` (0: all), in id order."""
        return self._live(KeypointFeatureRow.id > after)

    def for_entries(self, entry_ids: Sequence[int]) -> list[StoredFeatures]:
        """Features of these entries, where the entry is live."""
        if not entry_ids:
            return []
        return self._live(KeypointFeatureRow.entry_id.in_(list(entry_ids)))

    def marks(self) -> tuple[int, int]:
        """(highest feature row id, highest bank event id): where following starts."""
        with self.db.session() as s:
            top = s.scalar(select(func.max(KeypointFeatureRow.id))) or 0
            event = s.scalar(select(func.max(EventRow.id))) or 0
            return int(top), int(event)

    def events(self, after: int) -> list[tuple[int, int, int | None, str]]:
        """Bank change-log events after this id: (id, bank id, entry id, op)."""
        with self.db.session() as s:
            rows = s.execute(
                select(EventRow.id, EventRow.bank_id, EventRow.entry_id, EventRow.op)
                .where(EventRow.id > after)
                .order_by(EventRow.id)
            ).all()
            return [(int(i), int(b), None if e is None else int(e), str(o)) for i, b, e, o in rows]

    def count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(KeypointFeatureRow)) or 0)
