"""A hash feed quarantined (issue 13: "the admin told") raises the `feed_quarantined`
alert, from the worker thread the feed service records it in, to the local receiver."""

from __future__ import annotations

import json

import pytest

from tests.alerts import receiver
from tests.feeds.test_cli import HASHES, env, publisher, run  # noqa: F401  (fixtures)
from tests.feeds.test_service import SIGNER, URL, batch, values
from warden.config import load_settings
from warden.domain.banks import BankAction, BankKind
from warden.domain.feeds import Category, EntryOp, Trust
from warden.errors import FeedQuarantined
from warden.services.alerts import build_alerts, feed_quarantine_alert
from warden.services.feeds import FeedService
from warden.store.bank_import import NewEntry
from warden.store.banks import BankStore
from warden.store.feeds import FeedStore


async def test_a_quarantined_feed_alerts_the_admins(hooks, inbox, tmp_path, database):
    url = f"{hooks}/api/webhooks/1/{receiver.HOOK_TOKEN}"
    settings = load_settings(
        None,
        data_dir=tmp_path / "data",
        alerts={"channels": [{"name": "mods", "kind": "webhook_json", "url": url}]},
    )
    alerts = build_alerts(settings)
    assert alerts is not None
    alerts.start()  # as Services.start does
    service = FeedService(
        settings,
        FeedStore(database),
        BankStore(database),
        signer=SIGNER,
        on_quarantine=feed_quarantine_alert(alerts),
    )
    sub = service.subscribe(URL, SIGNER.fingerprint, "from-pub", Trust.REJECT)
    service.feeds.set_key(sub.id, SIGNER.public_raw.hex())
    listed = values(300)
    await service.receive(SIGNER.envelope(batch(0, [(EntryOp.ADD, v) for v in listed])))
    try:
        # a batch retracting most of the feed is held for the admin: quarantined
        with pytest.raises(FeedQuarantined):
            await service.receive(
                SIGNER.envelope(batch(300, [(EntryOp.REMOVE, v) for v in listed[:200]]))
            )
        assert service.feeds.subscription(sub.id).quarantined
        await alerts.drain()
    finally:
        await alerts.aclose()
    [text] = [json.loads(r["body"])["content"] for r in inbox.received]
    lines = text.splitlines()
    assert lines[0] == "[Warden] A hash feed was quarantined"
    assert f"`warden feeds resume {URL}`" in lines[1]
    assert "- code: feed_mass_retraction" in lines and "- bank: from-pub" in lines


def test_feeds_sync_from_the_command_line_alerts_on_a_quarantine(
    hooks,
    inbox,
    env,  # noqa: F811  (the feeds CLI tests' fixture)
    publisher,  # noqa: F811  (the feeds CLI tests' fixture)
    monkeypatch,
):
    """`warden feeds sync` run by hand tells the admins too, not only `warden serve`."""
    url = f"{hooks}/api/webhooks/1/{receiver.HOOK_TOKEN}"
    monkeypatch.setenv(
        "WARDEN_ALERTS__CHANNELS",
        json.dumps([{"name": "mods", "kind": "webhook_json", "url": url}]),
    )
    publisher.banks.ensure_bank("spam-pdq", BankKind.PDQ, BankAction.REJECT, "spam")
    publisher.banks.add("spam-pdq", [NewEntry(HASHES[0], "test", "admin", "spam")])
    publisher.feeds.publish("spam-pdq", Category.SPAM)
    feed = publisher.feed_url("spam-pdq")
    wrong = "ed25519:" + "0" * 64
    run("feeds", "subscribe", feed, "--key", wrong, "--bank", "b", "--action", "reject")
    assert "QUARANTINED" in run("feeds", "sync", code=1)
    [text] = [json.loads(r["body"])["content"] for r in inbox.received]
    assert text.splitlines()[0] == "[Warden] A hash feed was quarantined"
    assert "- code: feed_bad_signature" in text.splitlines()
