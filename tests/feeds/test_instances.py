"""Issue 13 end to end: Wardens on loopback share a flag through signed hash feeds.

A publishes its flag bank (pushing to B); B and C subscribe; C trusts A and D
only with a quorum of 2. A flags a photo: B refuses a resized copy at
/pictrs/validate, C only once D lists it too; A unflags: B accepts again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from tests.conftest import encode
from tests.feeds.instances import Instance
from warden.domain.banks import BankAction, BankKind
from warden.domain.feeds import (
    Category,
    EntryOp,
    FeedBatch,
    FeedEntry,
    SuggestedAction,
    Trust,
)
from warden.jobs.flag import flag, resolve, unflag
from warden.services.feed_keys import FeedSigner

FLAG_BANK = "local-confirmed"  # banks.flag_bank's default: where `warden flag` puts PDQs


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def admin_flag(instance: Instance, path: Path, *, undo: bool = False) -> None:
    """What `warden flag PATH` / `warden unflag PATH` do on that instance."""
    decisions = instance.services.decisions
    assert decisions is not None
    target = resolve(str(path), instance.settings, decisions)
    if undo:
        unflag(target, settings=instance.settings, store=instance.banks, by="admin", reason="fp")
    else:
        flag(
            target,
            settings=instance.settings,
            store=instance.banks,
            decisions=decisions,
            by="admin",
            reason="flood",
        )


def held(instance: Instance, bank: str) -> list[str]:
    """The live hashes of a bank (none while the first batch has not created it)."""
    if instance.banks.find_bank(bank) is None:
        return []
    return sorted(e.value for e in instance.banks.entries(bank))


@pytest.fixture
def wardens(tmp_path: Path, classifier) -> Iterator[dict[str, Instance]]:
    made = {n: Instance(n, tmp_path, classifier) for n in "abcd"}
    try:
        for instance in made.values():
            instance.start()
        yield made
    finally:
        for instance in made.values():
            instance.stop()


def test_a_flag_on_one_instance_protects_its_subscribers(wardens, tmp_path, ordinary_images):
    a, b, c, d = wardens["a"], wardens["b"], wardens["c"], wardens["d"]
    for publisher, push in ((a, [b.inbox]), (d, [])):
        publisher.banks.ensure_bank(FLAG_BANK, BankKind.PDQ, BankAction.REJECT, "flags")
        publisher.feeds.publish(FLAG_BANK, Category.SPAM, push=push)
    a_key, d_key = a.feeds.signer.fingerprint, d.feeds.signer.fingerprint
    b.feeds.subscribe(a.feed_url(FLAG_BANK), a_key, "from-a", Trust.REJECT)
    c.feeds.subscribe(a.feed_url(FLAG_BANK), a_key, "friends", Trust.REJECT, quorum=2)
    c.feeds.subscribe(d.feed_url(FLAG_BANK), d_key, "friends", Trust.REJECT, quorum=2)

    photo = ordinary_images["chelsea"]
    original = tmp_path / "original.png"
    original.write_bytes(encode(photo, "PNG"))
    resized = encode(photo.resize((photo.width * 2 // 3, photo.height * 2 // 3)), quality=70)
    assert b.validate(resized).status_code == 200
    assert c.validate(resized).status_code == 200

    admin_flag(a, original)
    wait_for(lambda: b.validate(resized).status_code == 422, "B to refuse the resized copy")
    refusal = b.validate(resized).json()
    assert refusal["error"] == "hash_match" and "from-a" in refusal["message"]
    [entry] = [e for e in b.banks.entries("from-a")]
    assert entry.added_by == f"feed:{FLAG_BANK}@{a_key}" and "entry 1" in entry.source

    # C follows A too, but one publisher is not a quorum of two
    a_head = a.feeds.feeds.feed(FLAG_BANK).head
    wait_for(
        lambda: all(
            s.position.cursor == a_head
            for s in c.feeds.feeds.subscriptions()
            if s.fingerprint == a_key
        ),
        "C to pull A's entry",
    )
    time.sleep(0.5)  # a bank refresh on C
    assert c.validate(resized).status_code == 200

    admin_flag(d, original)  # a second publisher lists the same picture
    wait_for(lambda: c.validate(resized).status_code == 422, "C to refuse at quorum 2")

    # D goes down: C keeps refusing from what it holds, and says why D is not pulled
    d.stop()
    d_sub = next(s for s in c.feeds.feeds.subscriptions() if s.fingerprint == d_key)
    wait_for(
        lambda: (c.feeds.feeds.subscription(d_sub.id).last_error or "").startswith(
            "feed_unavailable"
        ),
        "C to notice D is unreachable",
    )
    assert c.validate(resized).status_code == 422

    admin_flag(a, original, undo=True)  # A's false positive, cleared
    wait_for(lambda: b.validate(resized).status_code == 200, "B to accept again")
    wait_for(lambda: c.validate(resized).status_code == 200, "C below quorum again")
    assert [e for e in b.banks.entries("from-a")] == []
    removed = [e for e in b.banks.entries("from-a", include_removed=True)]
    assert len(removed) == 1, "the retracted entry is kept (removed), with its provenance"


def _batch(instance: Instance, cursor: int) -> dict:
    answer = httpx.get(instance.feed_url(FLAG_BANK), params={"cursor": cursor}, timeout=10)
    assert answer.status_code == 200
    return answer.json()


def test_forged_replayed_truncated_and_oversized_batches_change_nothing(
    wardens, tmp_path, ordinary_images
):
    a, b = wardens["a"], wardens["b"]
    a.banks.ensure_bank(FLAG_BANK, BankKind.PDQ, BankAction.REJECT, "flags")
    a.feeds.publish(FLAG_BANK, Category.GORE, push=[b.inbox])
    a_key = a.feeds.signer.fingerprint
    sub = b.feeds.subscribe(a.feed_url(FLAG_BANK), a_key, "from-a", Trust.REJECT)
    for name in ("chelsea", "coffee"):
        path = tmp_path / f"{name}.png"
        path.write_bytes(encode(ordinary_images[name], "PNG"))
        admin_flag(a, path)
    wait_for(lambda: len(held(b, "from-a")) == 2, "B to hold both entries")
    wait_for(lambda: b.feeds.feeds.subscription(sub.id).position.cursor == 2, "B at cursor 2")
    before = held(b, "from-a")

    def post(body: bytes) -> httpx.Response:
        return httpx.post(b.inbox, content=body, timeout=10)

    def unchanged() -> None:
        now = b.feeds.feeds.subscription(sub.id)
        assert now.position.cursor == 2 and not now.quarantined
        assert held(b, "from-a") == before

    real = _batch(a, 0)
    replayed = post(json.dumps(real).encode())
    assert (replayed.status_code, replayed.json()["error"]) == (409, "feed_replay")
    unchanged()

    tampered = json.loads(json.dumps(real))
    tampered["batch"]["entries"][0]["op"] = "remove"  # undo A's listing in A's name
    answer = post(json.dumps(tampered).encode())
    assert (answer.status_code, answer.json()["error"]) == (403, "feed_bad_signature")
    unchanged()

    stranger = FeedSigner(Ed25519PrivateKey.generate())  # signs as A, without A's key
    extra = FeedEntry(
        3,
        EntryOp.ADD,
        BankKind.PDQ,
        "ab" * 32,
        SuggestedAction.REJECT,
        Category.GORE,
        datetime.now(UTC),
    )
    forged = FeedBatch(
        FLAG_BANK, a_key, BankKind.PDQ, Category.GORE, 2, 3, 3, datetime.now(UTC), (extra,)
    )
    answer = post(stranger.envelope(forged))
    assert (answer.status_code, answer.json()["error"]) == (403, "feed_bad_signature")
    unchanged()

    cut = json.dumps(real).encode()
    answer = post(cut[: len(cut) // 2])
    assert (answer.status_code, answer.json()["error"]) == (400, "feed_malformed")
    # a batch that claims 3..4 but holds only 3, signed by A itself (a buggy publisher)
    short = FeedBatch(
        FLAG_BANK, a_key, BankKind.PDQ, Category.GORE, 2, 4, 4, datetime.now(UTC), (extra,)
    )
    answer = post(a.feeds.signer.envelope(short))
    assert (answer.status_code, answer.json()["error"]) == (400, "feed_truncated")
    unchanged()

    limit = b.settings.feeds.max_batch_bytes
    answer = post(b"{" + b" " * limit + b"}")
    assert (answer.status_code, answer.json()["error"]) == (413, "feed_too_large")
    unchanged()

    # A's database is restored from an old backup: its feed went back to entry 1.
    # B refuses to follow it backwards, quarantines the feed and keeps both entries.
    assert a.services.database is not None
    with a.services.database.session() as s:
        s.execute(text("DELETE FROM feed_log WHERE seq > 1"))
        s.execute(text("UPDATE feeds_published SET head = 1"))
    wait_for(lambda: b.feeds.feeds.subscription(sub.id).quarantined, "B to quarantine A")
    stopped = b.feeds.feeds.subscription(sub.id)
    assert stopped.last_error is not None and stopped.last_error.startswith("feed_rollback")
    assert held(b, "from-a") == before
    assert b.validate(encode(ordinary_images["coffee"])).status_code == 422

    # A's key is replaced (a reinstall, or an intruder): B's pinned key no longer
    # verifies what A serves, so B quarantines A again and keeps what it has
    with a.services.database.session() as s:
        s.execute(text("DELETE FROM feed_log"))
        s.execute(text("UPDATE feeds_published SET head = 0"))
    a.feeds.signer = FeedSigner(Ed25519PrivateKey.generate())
    a.feeds._marker = None  # let A log its bank again, from 1
    wait_for(lambda: a.feeds.feeds.feed(FLAG_BANK).head == 2, "A to log its bank again")
    b.feeds.feeds.resume(sub.url)
    wait_for(lambda: b.feeds.feeds.subscription(sub.id).quarantined, "B to quarantine A again")
    again = b.feeds.feeds.subscription(sub.id).last_error or ""
    assert again.startswith("feed_bad_signature"), again
    assert held(b, "from-a") == before
