"""The feed protocol's rules (domain/feeds.py) and signatures, without a network."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from warden.domain.banks import BankKind
from warden.domain.feeds import (
    Category,
    EntryOp,
    FeedBatch,
    FeedEntry,
    Position,
    SuggestedAction,
    advance,
    canonical,
    check_position,
    parse_batch,
    quorum_met,
)
from warden.errors import (
    FeedBadSignature,
    FeedMalformed,
    FeedOutOfOrder,
    FeedReplay,
    FeedRollback,
    FeedStale,
    FeedTruncated,
)
from warden.services.feed_keys import FeedSigner, verify_envelope

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNER = FeedSigner(Ed25519PrivateKey.generate())


def entry(seq: int, value: str = "ab" * 32, op: EntryOp = EntryOp.ADD) -> FeedEntry:
    return FeedEntry(seq, op, BankKind.PDQ, value, SuggestedAction.REJECT, Category.SPAM, NOW)


def batch(cursor: int, n: int, head: int | None = None, at: datetime = NOW) -> FeedBatch:
    entries = tuple(entry(cursor + i + 1, f"{cursor + i + 1:064x}") for i in range(n))
    end = cursor + n
    return FeedBatch(
        "spam",
        SIGNER.fingerprint,
        BankKind.PDQ,
        Category.SPAM,
        cursor,
        end,
        head if head is not None else end,
        at,
        entries,
    )


def check(b: FeedBatch, at: Position, now: datetime = NOW) -> None:
    check_position(b, at, now=now, max_age_s=3600, max_skew_s=300)


def test_canonical_bytes_are_one_spelling():
    assert canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    wire = json.loads(SIGNER.envelope(batch(0, 2)))
    assert json.loads(json.dumps(wire, indent=3))["batch"] == wire["batch"]


def test_a_signed_batch_round_trips_and_any_change_breaks_it():
    wire = json.loads(SIGNER.envelope(batch(0, 3)))
    public = SIGNER.public_raw.hex()
    assert verify_envelope(wire, public, 100) == batch(0, 3)
    for field, value in (("head", 4), ("feed", "gore"), ("cursor", 1)):
        bent = json.loads(json.dumps(wire))
        bent["batch"][field] = value
        with pytest.raises(FeedBadSignature):
            verify_envelope(bent, public, 100)
    other = FeedSigner(Ed25519PrivateKey.generate()).public_raw.hex()
    with pytest.raises(FeedBadSignature):
        verify_envelope(wire, other, 100)
    wire["signature"] = base64.b64encode(b"x" * 64).decode()
    with pytest.raises(FeedBadSignature):
        verify_envelope(wire, public, 100)


def test_batches_that_do_not_hold_what_they_claim_are_refused():
    good = batch(0, 3).as_json()
    cut = dict(good, entries=good["entries"][:2])
    with pytest.raises(FeedTruncated):
        parse_batch(cut, max_entries=100)
    holed = dict(good, entries=[good["entries"][0], good["entries"][2]])
    with pytest.raises(FeedTruncated):
        parse_batch(holed, max_entries=100)
    with pytest.raises(FeedMalformed, match="more than"):
        parse_batch(good, max_entries=2)
    for bent in (
        dict(good, extra=1),
        dict(good, cursor=-1),
        dict(good, cursor=2.0),
        dict(good, next=9),
        dict(good, kind="md5"),
        dict(good, entries=[dict(good["entries"][0], hash="zz"), *good["entries"][1:]]),
        dict(good, entries=[dict(good["entries"][0], kind="sha256"), *good["entries"][1:]]),
        dict(good, issued_at="yesterday"),
    ):
        with pytest.raises(FeedMalformed):
            parse_batch(bent, max_entries=100)


def test_only_the_batch_that_continues_the_cursor_is_applied():
    at = Position(cursor=3, head_seen=3, issued_seen=NOW - timedelta(seconds=5))
    check(batch(3, 2), at)
    with pytest.raises(FeedReplay):
        check(batch(1, 2, head=5), at)
    with pytest.raises(FeedOutOfOrder):
        check(batch(4, 1), at)
    with pytest.raises(FeedRollback):
        check(batch(2, 0, head=2), at)
    with pytest.raises(FeedReplay):
        check(batch(3, 1, at=NOW - timedelta(seconds=60)), at)
    with pytest.raises(FeedStale):
        check(batch(3, 1, at=NOW - timedelta(hours=2)), Position(3, 3))
    with pytest.raises(FeedStale):
        check(batch(3, 1, at=NOW + timedelta(hours=1)), Position(3, 3))
    assert advance(batch(3, 2, head=9), at) == Position(5, 9, NOW)


def test_a_quorum_counts_publishers_not_feeds():
    assert not quorum_met({"ed25519:a"}, 2)
    assert quorum_met({"ed25519:a", "ed25519:b"}, 2)
    assert quorum_met({"ed25519:a"}, 1)
