"""The hash-feed tables, and the plain records the rest of Warden sees of them.

Published feeds keep their whole log (`feed_log`): a subscriber starting from
zero reads every addition and retraction, so the log is the feed.
Subscriptions keep, per publisher, which hashes it lists now (`feed_listings`,
the provenance behind every entry a feed put into a local bank), the cursor,
the highest head and newest batch seen, the ids of batches already applied,
and whether the feed is quarantined. Queries live in store/feeds.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from warden.domain.banks import BankKind
from warden.domain.feeds import Category, Position, SuggestedAction, Trust
from warden.store.base import Base, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class PublishedFeedRow(Base):
    __tablename__ = "feeds_published"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    bank: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(8))
    push_to: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of inbox URLs
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    head: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedLogRow(Base):
    """One entry of a published feed; `live` is cleared on an add once it is retracted."""

    __tablename__ = "feed_log"
    __table_args__ = (
        UniqueConstraint("feed_id", "seq"),
        Index("ix_feed_log_live", "feed_id", "live", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds_published.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    live: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriptionRow(Base):
    __tablename__ = "feed_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(500), unique=True)
    feed: Mapped[str] = mapped_column(String(63))
    fingerprint: Mapped[str] = mapped_column(String(80))
    public_key: Mapped[str | None] = mapped_column(String(64))  # hex, once fetched and checked
    bank: Mapped[str] = mapped_column(String(63))
    trust: Mapped[str] = mapped_column(String(8))
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    head_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    issued_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    etag: Mapped[str | None] = mapped_column(String(200))
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ListingRow(Base):
    """A hash a subscribed feed lists now (or listed: `live` false after a retraction)."""

    __tablename__ = "feed_listings"
    __table_args__ = (UniqueConstraint("subscription_id", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("feed_subscriptions.id", ondelete="CASCADE")
    )
    value: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(8))
    live: Mapped[bool] = mapped_column(Boolean, default=True)
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SeenBatchRow(Base):
    __tablename__ = "feed_seen_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("feed_subscriptions.id", ondelete="CASCADE"), index=True
    )
    batch_id: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class PublishedFeed:
    id: int
    name: str
    bank: str
    kind: BankKind
    category: Category
    action: SuggestedAction
    push_to: tuple[str, ...]
    active: bool
    head: int


@dataclass(frozen=True)
class Subscription:
    id: int
    url: str
    feed: str
    fingerprint: str
    public_key: str | None
    bank: str
    trust: Trust
    quorum: int
    position: Position
    etag: str | None
    quarantined: bool
    last_error: str | None
    last_ok_at: datetime | None


def published_feed(row: PublishedFeedRow) -> PublishedFeed:
    return PublishedFeed(
        row.id,
        row.name,
        row.bank,
        BankKind(row.kind),
        Category(row.category),
        SuggestedAction(row.action),
        tuple(json.loads(row.push_to)),
        row.active,
        int(row.head),
    )


def subscription(row: SubscriptionRow) -> Subscription:
    return Subscription(
        row.id,
        row.url,
        row.feed,
        row.fingerprint,
        row.public_key,
        row.bank,
        Trust(row.trust),
        row.quorum,
        Position(int(row.cursor), int(row.head_seen), row.issued_seen),
        row.etag,
        row.quarantined,
        row.last_error,
        row.last_ok_at,
    )
