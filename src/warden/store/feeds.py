"""Hash feeds in the database (tables in store/feed_tables.py): publishing, following,
and the instance's signing key on disk.

The key is a file, not a row: a database dump handed to someone must not let
them sign as this instance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, delete, func, insert, select, update

from warden.domain.banks import BankKind
from warden.domain.feeds import Category, EntryOp, FeedEntry, Position, SuggestedAction, Trust
from warden.errors import FeedReplay, FeedUnknown, StoreError
from warden.store.base import Base, utcnow
from warden.store.database import Database
from warden.store.feed_tables import (
    FeedLogRow,
    ListingRow,
    PublishedFeed,
    PublishedFeedRow,
    SeenBatchRow,
    Subscription,
    SubscriptionRow,
    published_feed,
    subscription,
)


def table(row: type[Base]) -> Table:
    """The Core table of a mapped class: bulk inserts through Core skip the ORM's
    per-row bookkeeping (several times faster for a 5,000-entry batch)."""
    found = row.__table__
    assert isinstance(found, Table)
    return found


SEEN_KEPT = 1_000  # batch ids remembered per subscription


class FeedStore:
    """Published feeds and subscriptions. Blocking; call from threads in async code."""

    def __init__(self, database: Database) -> None:
        self.db = database

    # -- publishing --------------------------------------------------------------

    def publish(
        self,
        name: str,
        bank: str,
        kind: BankKind,
        category: Category,
        action: SuggestedAction,
        push_to: Sequence[str],
    ) -> PublishedFeed:
        """Publish (or re-publish, keeping the log and its numbering) a bank as `name`."""
        with self.db.session() as s:
            row = s.scalar(select(PublishedFeedRow).where(PublishedFeedRow.name == name))
            if row is not None and row.bank != bank:
                raise StoreError(
                    f"feed {name!r} already publishes bank {row.bank!r}", code="feed_exists"
                )
            if row is None:
                row = PublishedFeedRow(name=name, bank=bank, kind=kind.value, head=0)
                s.add(row)
            row.category, row.action = category.value, action.value
            row.push_to, row.active = json.dumps(list(push_to)), True
            s.flush()
            return published_feed(row)

    def unpublish(self, name: str) -> PublishedFeed:
        with self.db.session() as s:
            row = s.scalar(select(PublishedFeedRow).where(PublishedFeedRow.name == name))
            if row is None:
                raise FeedUnknown(f"no published feed named {name!r} (see `warden feeds list`)")
            row.active = False
            return published_feed(row)

    def published(self, *, active_only: bool = False) -> list[PublishedFeed]:
        with self.db.session() as s:
            q = select(PublishedFeedRow).order_by(PublishedFeedRow.name)
            if active_only:
                q = q.where(PublishedFeedRow.active.is_(True))
            return [published_feed(r) for r in s.scalars(q)]

    def feed(self, name: str) -> PublishedFeed:
        with self.db.session() as s:
            row = s.scalar(select(PublishedFeedRow).where(PublishedFeedRow.name == name))
            if row is None or not row.active:
                raise FeedUnknown(f"no published feed named {name[:80]!r}")
            return published_feed(row)

    def live_values(self, feed_id: int) -> set[str]:
        with self.db.session() as s:
            rows = s.scalars(
                select(FeedLogRow.value).where(
                    FeedLogRow.feed_id == feed_id, FeedLogRow.live.is_(True)
                )
            )
            return set(rows)

    def catch_up(self, feed_id: int, live: set[str]) -> tuple[int, int]:
        """Append what makes the feed list exactly `live` (the bank's live hashes now):
        retractions, then additions, numbered on from the head. Decided while holding
        the feed's row (FOR UPDATE on PostgreSQL), so two replicas never log one change
        twice. Returns (head before, head after)."""
        with self.db.session() as s:
            row = s.get(PublishedFeedRow, feed_id, with_for_update=True)
            if row is None:
                raise FeedUnknown(f"no published feed {feed_id}")
            listed = set(
                s.scalars(
                    select(FeedLogRow.value).where(
                        FeedLogRow.feed_id == feed_id, FeedLogRow.live.is_(True)
                    )
                )
            )
            gone, added = sorted(listed - live), sorted(live - listed)
            before = head = int(row.head)
            now = utcnow()
            for i in range(0, len(gone), 500):
                s.execute(
                    update(FeedLogRow)
                    .where(
                        FeedLogRow.feed_id == feed_id,
                        FeedLogRow.live.is_(True),
                        FeedLogRow.value.in_(gone[i : i + 500]),
                    )
                    .values(live=False)
                )
            rows: list[dict[str, object]] = []
            for op, values in (("remove", gone), ("add", added)):
                for value in values:
                    head += 1
                    rows.append(
                        {
                            "feed_id": feed_id,
                            "seq": head,
                            "op": op,
                            "value": value,
                            "action": row.action,
                            "live": op == "add",
                            "added_at": now,
                        }
                    )
            if rows:
                s.execute(insert(table(FeedLogRow)), rows)
            row.head = head
            return before, head

    def log(self, feed: PublishedFeed, cursor: int, limit: int) -> list[FeedEntry]:
        """Entries after `cursor`, at most `limit`, in order."""
        with self.db.session() as s:
            rows = s.execute(
                select(
                    FeedLogRow.seq,
                    FeedLogRow.op,
                    FeedLogRow.value,
                    FeedLogRow.action,
                    FeedLogRow.added_at,
                )
                .where(FeedLogRow.feed_id == feed.id, FeedLogRow.seq > cursor)
                .order_by(FeedLogRow.seq)
                .limit(limit)
            ).all()
        return [
            FeedEntry(
                int(seq),
                EntryOp(op),
                feed.kind,
                value,
                SuggestedAction(action),
                feed.category,
                at,
            )
            for seq, op, value, action, at in rows
        ]

    # -- subscriptions -----------------------------------------------------------

    def subscribe(
        self, url: str, feed: str, fingerprint: str, bank: str, trust: Trust, quorum: int
    ) -> Subscription:
        """Follow a feed; re-subscribing the same URL changes trust and bank, keeps the
        cursor unless the key changed (a new key starts from zero)."""
        with self.db.session() as s:
            row = s.scalar(select(SubscriptionRow).where(SubscriptionRow.url == url))
            if row is None:
                row = SubscriptionRow(url=url, feed=feed, cursor=0, head_seen=0)
                s.add(row)
            if row.fingerprint != fingerprint:
                row.public_key, row.cursor, row.head_seen, row.issued_seen = None, 0, 0, None
                row.etag = None
            row.fingerprint, row.bank, row.trust, row.quorum = (
                fingerprint,
                bank,
                trust.value,
                quorum,
            )
            row.quarantined, row.last_error = False, None
            s.flush()
            return subscription(row)

    def unsubscribe(self, url: str) -> None:
        with self.db.session() as s:
            s.execute(delete(SubscriptionRow).where(SubscriptionRow.url == url))

    def subscriptions(self) -> list[Subscription]:
        with self.db.session() as s:
            rows = s.scalars(select(SubscriptionRow).order_by(SubscriptionRow.url))
            return [subscription(r) for r in rows]

    def subscription(self, sub_id: int) -> Subscription:
        with self.db.session() as s:
            row = s.get(SubscriptionRow, sub_id)
            if row is None:
                raise FeedUnknown(f"no subscription {sub_id}")
            return subscription(row)

    def set_key(self, sub_id: int, public_key: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.id == sub_id)
                .values(public_key=public_key)
            )

    def note(
        self, sub_id: int, *, error: str | None, quarantine: bool = False, etag: str | None = None
    ) -> None:
        """Record the outcome of a pull or push: an error (kept for `warden feeds list`),
        a quarantine, or success."""
        values: dict[str, object] = {"last_error": error[:1000] if error else None}
        if quarantine:
            values["quarantined"] = True
        if error is None:
            values["last_ok_at"] = utcnow()
        if etag is not None:
            values["etag"] = etag
        with self.db.session() as s:
            s.execute(update(SubscriptionRow).where(SubscriptionRow.id == sub_id).values(**values))

    def resume(self, url: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.url == url)
                .values(quarantined=False, last_error=None)
            )

    def seen(self, sub_id: int, batch_id: str) -> bool:
        with self.db.session() as s:
            hit = s.scalar(
                select(SeenBatchRow.id).where(
                    SeenBatchRow.subscription_id == sub_id, SeenBatchRow.batch_id == batch_id
                )
            )
            return hit is not None

    def record_listings(self, sub_id: int, entries: Sequence[FeedEntry]) -> None:
        """Store what a verified batch lists and retracts (idempotent: applying the
        same batch twice leaves the same rows)."""
        latest: dict[str, FeedEntry] = {e.hash: e for e in entries}
        values = list(latest)
        with self.db.session() as s:
            have: dict[str, ListingRow] = {}
            for i in range(0, len(values), 500):
                found = s.scalars(
                    select(ListingRow).where(
                        ListingRow.subscription_id == sub_id,
                        ListingRow.value.in_(values[i : i + 500]),
                    )
                )
                have.update({r.value: r for r in found})
            fresh = []
            for value, e in latest.items():
                live = e.op is EntryOp.ADD
                row = have.get(value)
                if row is None:
                    fresh.append(
                        {
                            "subscription_id": sub_id,
                            "value": value,
                            "seq": e.seq,
                            "category": e.category.value,
                            "live": live,
                            "listed_at": e.at,
                        }
                    )
                else:
                    row.seq, row.category, row.live, row.listed_at = (
                        e.seq,
                        e.category.value,
                        live,
                        e.at,
                    )
            if fresh:
                s.execute(insert(table(ListingRow)), fresh)

    def advance(self, sub_id: int, batch_id: str, expected: Position, position: Position) -> None:
        """Move the cursor from `expected` to `position` and remember the batch id;
        FeedReplay when another worker moved it first (the batch was applied twice,
        harmlessly)."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(SubscriptionRow, sub_id, with_for_update=True)
            if row is None:
                raise FeedUnknown(f"no subscription {sub_id}")
            if int(row.cursor) != expected.cursor:
                raise FeedReplay(f"cursor moved to {row.cursor} meanwhile")
            row.cursor, row.head_seen = position.cursor, position.head_seen
            row.issued_seen, row.last_ok_at, row.last_error = position.issued_seen, now, None
            s.add(SeenBatchRow(subscription_id=sub_id, batch_id=batch_id, seen_at=now))
            floor = s.scalar(
                select(SeenBatchRow.id)
                .where(SeenBatchRow.subscription_id == sub_id)
                .order_by(SeenBatchRow.id.desc())
                .offset(SEEN_KEPT)
                .limit(1)
            )
            if floor is not None:
                s.execute(
                    delete(SeenBatchRow).where(
                        SeenBatchRow.subscription_id == sub_id, SeenBatchRow.id <= floor
                    )
                )

    def listers(self, values: Sequence[str]) -> dict[str, list[tuple[int, str, str, int]]]:
        """For each hash, the live listings of it by unquarantined subscriptions:
        (subscription id, publisher fingerprint, local bank, seq)."""
        found: dict[str, list[tuple[int, str, str, int]]] = {}
        with self.db.session() as s:
            for i in range(0, len(values), 500):
                rows = s.execute(
                    select(
                        ListingRow.value,
                        ListingRow.subscription_id,
                        SubscriptionRow.fingerprint,
                        SubscriptionRow.bank,
                        ListingRow.seq,
                    )
                    .join(SubscriptionRow, SubscriptionRow.id == ListingRow.subscription_id)
                    .where(
                        ListingRow.value.in_(list(values[i : i + 500])),
                        ListingRow.live.is_(True),
                        SubscriptionRow.quarantined.is_(False),
                    )
                ).all()
                for value, sub_id, fp, bank, seq in rows:
                    found.setdefault(value, []).append((int(sub_id), fp, bank, int(seq)))
        return found

    def listing_count(self, sub_id: int) -> int:
        with self.db.session() as s:
            n = s.scalar(
                select(func.count()).where(
                    ListingRow.subscription_id == sub_id, ListingRow.live.is_(True)
                )
            )
            return int(n or 0)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The instance's feed signing key: read from `path`, or made there (0600 in a
    0700 folder, written with O_EXCL so two processes never make two keys)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
    if path.stat().st_mode & 0o077:
        raise StoreError(f"{path} is readable by others: `chmod 600 {path}`", code="feed_key_open")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise StoreError(f"{path} is not an Ed25519 private key", code="feed_key_bad")
    return loaded
