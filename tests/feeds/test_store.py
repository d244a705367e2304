"""The feed tables on SQLite and PostgreSQL: the log, listings, cursor and key file."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from warden.domain.banks import BankKind
from warden.domain.feeds import (
    Category,
    EntryOp,
    FeedEntry,
    Position,
    SuggestedAction,
    Trust,
)
from warden.errors import FeedReplay, StoreError
from warden.store.feeds import FeedStore, load_or_create_key

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
A, B, C = "aa" * 32, "bb" * 32, "cc" * 32


def test_the_log_numbers_additions_and_retractions_without_rewriting(database):
    store = FeedStore(database)
    feed = store.publish(
        "spam", "spam-pdq", BankKind.PDQ, Category.SPAM, SuggestedAction.REJECT, []
    )
    assert store.catch_up(feed.id, {A, B}) == (0, 2)
    assert store.catch_up(feed.id, {A, B}) == (2, 2), "nothing changed, nothing logged"
    assert store.catch_up(feed.id, {B, C}) == (2, 4)
    assert store.live_values(feed.id) == {B, C}
    entries = store.log(store.feed("spam"), 0, 100)
    assert [(e.seq, e.op, e.hash) for e in entries] == [
        (1, EntryOp.ADD, A),
        (2, EntryOp.ADD, B),
        (3, EntryOp.REMOVE, A),
        (4, EntryOp.ADD, C),
    ]
    assert [e.seq for e in store.log(store.feed("spam"), 2, 1)] == [3]
    store.unpublish("spam")
    again = store.publish(
        "spam", "spam-pdq", BankKind.PDQ, Category.GORE, SuggestedAction.REJECT, []
    )
    assert again.head == 4, "publishing again continues the same log"


def test_listings_follow_batches_and_the_cursor_only_moves_forward(database):
    store = FeedStore(database)
    one = store.subscribe("http://a/feeds/v1/x", "x", "ed25519:" + "1" * 64, "b", Trust.REJECT, 2)
    two = store.subscribe("http://d/feeds/v1/y", "y", "ed25519:" + "2" * 64, "b", Trust.REJECT, 2)

    def entry(seq: int, value: str, op: EntryOp = EntryOp.ADD) -> FeedEntry:
        return FeedEntry(seq, op, BankKind.PDQ, value, SuggestedAction.REJECT, Category.SPAM, NOW)

    store.record_listings(one.id, [entry(1, A), entry(2, B)])
    store.record_listings(one.id, [entry(1, A), entry(2, B)])  # the same batch again: no change
    store.record_listings(two.id, [entry(1, A)])
    found = store.listers([A, B, C])
    assert sorted(fp for _, fp, _, _ in found[A]) == ["ed25519:" + "1" * 64, "ed25519:" + "2" * 64]
    assert len(found[B]) == 1 and C not in found
    store.record_listings(one.id, [entry(3, A, EntryOp.REMOVE)])
    assert len(store.listers([A])[A]) == 1
    assert store.listing_count(one.id) == 1

    store.advance(one.id, "batch-1", Position(), Position(3, 3, NOW))
    assert store.seen(one.id, "batch-1") and not store.seen(two.id, "batch-1")
    with pytest.raises(FeedReplay):
        store.advance(one.id, "batch-0", Position(), Position(2, 2, NOW))
    assert store.subscription(one.id).position == Position(3, 3, NOW)

    store.note(two.id, error="feed_bad_signature: no", quarantine=True)
    assert store.subscription(two.id).quarantined
    assert store.listers([A]) == {}, "retracted by one, and the other is quarantined"


def test_the_key_file_is_private_and_refused_when_it_is_not(tmp_path):
    path = tmp_path / "keys" / "feed-key.pem"
    key = load_or_create_key(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create_key(path).private_bytes_raw() == key.private_bytes_raw()
    path.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        load_or_create_key(path)
