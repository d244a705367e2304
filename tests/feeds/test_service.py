"""The subscriber's rules on a real database, without a network: trust, provenance,
entries an admin added by hand, and a publisher that tries to empty the bank."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from warden.config import load_settings
from warden.domain.banks import BankAction, BankKind
from warden.domain.feeds import (
    Category,
    EntryOp,
    FeedBatch,
    FeedEntry,
    SuggestedAction,
    Trust,
)
from warden.errors import BankError, FeedQuarantined, FeedRateLimited, FeedReplay
from warden.services.feed_keys import FeedSigner
from warden.services.feeds import FeedService
from warden.store.banks import BankStore, NewEntry
from warden.store.feeds import FeedStore

SIGNER = FeedSigner(Ed25519PrivateKey.generate())
URL = "http://publisher.example/feeds/v1/spam"


def values(n: int, start: int = 0) -> list[str]:
    return [f"{i:064x}" for i in range(start + 1, start + n + 1)]


def batch(cursor: int, ops: list[tuple[EntryOp, str]], head: int | None = None) -> FeedBatch:
    now = datetime.now(UTC)
    entries = tuple(
        FeedEntry(cursor + i + 1, op, BankKind.PDQ, v, SuggestedAction.REJECT, Category.SPAM, now)
        for i, (op, v) in enumerate(ops)
    )
    end = cursor + len(entries)
    return FeedBatch(
        "spam",
        SIGNER.fingerprint,
        BankKind.PDQ,
        Category.SPAM,
        cursor,
        end,
        head or end,
        now,
        entries,
    )


@pytest.fixture
def service(tmp_path: Path, database) -> FeedService:
    settings = load_settings(None, data_dir=tmp_path / "data")
    return FeedService(settings, FeedStore(database), BankStore(database), signer=SIGNER)


def apply(service: FeedService, b: FeedBatch) -> int:
    sub = service.feeds.subscriptions()[0]
    return service.apply(sub, b, b.as_json())


def live(service: FeedService, bank: str) -> list[str]:
    return sorted(e.value for e in service.banks.entries(bank))


def test_review_trust_makes_a_review_bank_with_provenance(service):
    service.subscribe(URL, SIGNER.fingerprint, "from-pub", Trust.REVIEW)
    assert apply(service, batch(0, [(EntryOp.ADD, v) for v in values(3)])) == 3
    bank = service.banks.bank("from-pub")
    assert bank.action is BankAction.REVIEW
    [first, *_] = list(service.banks.entries("from-pub"))
    assert first.added_by == f"feed:spam@{SIGNER.fingerprint}"
    assert first.source == f"{URL.replace('http', 'feed http', 1)} entry 1"


def test_a_reject_feed_cannot_be_pointed_at_a_review_bank(service):
    service.banks.ensure_bank("mine", BankKind.PDQ, BankAction.REVIEW, "")
    with pytest.raises(BankError):
        service.subscribe(URL, SIGNER.fingerprint, "mine", Trust.REJECT)


def test_a_retraction_never_removes_what_an_admin_added_by_hand(service):
    service.subscribe(URL, SIGNER.fingerprint, "shared", Trust.REJECT)
    mine, theirs = values(2)
    service.banks.ensure_bank("shared", BankKind.PDQ, BankAction.REJECT, "")
    service.banks.add("shared", [NewEntry(mine, "hand", "admin", "seen it")])
    apply(service, batch(0, [(EntryOp.ADD, mine), (EntryOp.ADD, theirs)]))
    assert live(service, "shared") == sorted([mine, theirs])
    apply(service, batch(2, [(EntryOp.REMOVE, mine), (EntryOp.REMOVE, theirs)]))
    assert live(service, "shared") == [mine]


def test_a_publisher_retracting_most_of_its_feed_is_held_not_obeyed(service):
    service.subscribe(URL, SIGNER.fingerprint, "from-pub", Trust.REJECT)
    listed = values(300)
    apply(service, batch(0, [(EntryOp.ADD, v) for v in listed]))
    with pytest.raises(FeedQuarantined) as refused:
        apply(service, batch(300, [(EntryOp.REMOVE, v) for v in listed[:200]]))
    assert refused.value.code == "feed_mass_retraction"
    assert live(service, "from-pub") == listed
    assert service.feeds.subscriptions()[0].position.cursor == 300
    apply(service, batch(300, [(EntryOp.REMOVE, v) for v in listed[:100]]))  # a few is normal
    assert live(service, "from-pub") == listed[100:]


async def test_pushes_beyond_the_inbox_rate_are_refused(tmp_path, database):
    settings = load_settings(None, data_dir=tmp_path / "data", feeds={"inbox_per_minute": 2})
    service = FeedService(settings, FeedStore(database), BankStore(database), signer=SIGNER)
    sub = service.subscribe(URL, SIGNER.fingerprint, "from-pub", Trust.REJECT)
    service.feeds.set_key(sub.id, SIGNER.public_raw.hex())
    first = SIGNER.envelope(batch(0, [(EntryOp.ADD, v) for v in values(2)]))
    assert await service.receive(first) == {"status": "applied", "entries": 2}
    with pytest.raises(FeedReplay):
        await service.receive(first)
    with pytest.raises(FeedRateLimited):
        await service.receive(SIGNER.envelope(batch(2, [(EntryOp.ADD, values(1, 9)[0])])))
    assert live(service, "from-pub") == values(2)
