"""Where uploaded media was used: the Lemmy posts (and so communities) behind an alias.

The ingest proxy learns who uploaded a file and its pict-rs alias, but not
where it will be posted: Lemmy creates the post later, with the image's URL
in `post.url`, `post.thumbnail_url` or the body's markdown. The console's
placement service (services/placement.py) finds those posts afterwards and
writes one row per (alias, post) here, so that a moderator sees exactly the
reviews posted in the communities they moderate.

A row is a fact Lemmy reported (its database or its search API), never a
guess: the alias appeared, whole, in a post of that community on this host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database


class MediaPlaceRow(Base):
    __tablename__ = "media_places"

    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    post_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    community_id: Mapped[int] = mapped_column(BigInteger, index=True)
    community: Mapped[str | None] = mapped_column(String(255))
    via: Mapped[str] = mapped_column(String(16))  # "database" | "api"
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class MediaPlace:
    """One Lemmy post that uses an uploaded file: the alias, the post, its community."""

    alias: str
    post_id: int
    community_id: int
    community: str | None = None
    via: str = "database"


class PlaceStore:
    """Read and add media places. Blocking: call from a worker thread in async code."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, places: Iterable[MediaPlace], now: datetime) -> int:
        """Record places not yet known; how many were new (a place counts once)."""
        added = 0
        with self.db.session() as s:
            for p in dict.fromkeys(places):
                if s.get(MediaPlaceRow, (p.alias, p.post_id)) is not None:
                    continue
                s.add(
                    MediaPlaceRow(
                        alias=p.alias,
                        post_id=p.post_id,
                        community_id=p.community_id,
                        community=p.community,
                        via=p.via,
                        found_at=now,
                    )
                )
                s.flush()
                added += 1
        return added

    def of(self, aliases: Iterable[str]) -> dict[str, list[MediaPlace]]:
        """Alias -> the places known for it (aliases placed nowhere are left out)."""
        wanted = sorted({a for a in aliases if a})
        found: dict[str, list[MediaPlace]] = {}
        with self.db.session() as s:
            for start in range(0, len(wanted), 500):
                query = (
                    select(MediaPlaceRow)
                    .where(MediaPlaceRow.alias.in_(wanted[start : start + 500]))
                    .order_by(MediaPlaceRow.alias, MediaPlaceRow.post_id)
                )
                for r in s.scalars(query):
                    found.setdefault(r.alias, []).append(
                        MediaPlace(r.alias, r.post_id, r.community_id, r.community, r.via)
                    )
        return found
