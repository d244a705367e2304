"""`warden feeds` through Typer's runner, subscribing to a real Warden on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.feeds.instances import Instance
from warden.cli import app
from warden.domain.banks import BankAction, BankKind
from warden.domain.feeds import Category
from warden.store.banks import NewEntry

runner = CliRunner()
HASHES = ["ab" * 32, "cd" * 32, "ef" * 32]


@pytest.fixture
def publisher(tmp_path: Path, classifier) -> Iterator[Instance]:
    instance = Instance("a", tmp_path, classifier).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "subscriber"))
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    return tmp_path / "subscriber"


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_key_publish_subscribe_sync_list(env, publisher):
    shown = run("feeds", "key")
    assert "fingerprint: ed25519:" in shown
    assert (env / "feed-key.pem").stat().st_mode & 0o777 == 0o600

    publisher.banks.ensure_bank("spam-pdq", BankKind.PDQ, BankAction.REJECT, "spam")
    publisher.banks.add("spam-pdq", [NewEntry(h, "test", "admin", "spam") for h in HASHES])
    publisher.feeds.publish("spam-pdq", Category.SPAM)
    url = publisher.feed_url("spam-pdq")
    fingerprint = publisher.feeds.signer.fingerprint

    bad = run(
        "feeds",
        "subscribe",
        url,
        "--key",
        "ed25519:12",
        "--bank",
        "x",
        "--action",
        "reject",
        code=2,
    )
    assert "64 hex digits" in bad
    run("feeds", "subscribe", url, "--key", fingerprint, "--bank", "from-a", "--action", "review")
    assert "3 entries applied" in run("feeds", "sync")
    listed = run("feeds", "list")
    assert "from-a" in listed and "review" in listed and "QUARANTINED" not in listed
    assert "0 entries applied" in run("feeds", "sync")  # nothing new: 304 or an empty batch
    # the same entries, handed on as a ThreatExchange signal file (for HMA)
    exported = run("hashes", "export", "from-a", "--format", "te")
    assert sorted(line for line in exported.splitlines() if line) == [f"pdq {h}" for h in HASHES]


def test_a_wrong_fingerprint_quarantines_without_touching_the_bank(env, publisher):
    publisher.banks.ensure_bank("spam-pdq", BankKind.PDQ, BankAction.REJECT, "spam")
    publisher.banks.add("spam-pdq", [NewEntry(HASHES[0], "test", "admin", "spam")])
    publisher.feeds.publish("spam-pdq", Category.SPAM)
    url = publisher.feed_url("spam-pdq")
    run(
        "feeds",
        "subscribe",
        url,
        "--key",
        "ed25519:" + "0" * 64,
        "--bank",
        "b",
        "--action",
        "reject",
    )
    failed = run("feeds", "sync", code=1)
    assert "QUARANTINED" in failed and "feed_bad_signature" in failed
    assert "QUARANTINED" in run("feeds", "list")
    run("feeds", "resume", url)
    assert "QUARANTINED" not in run("feeds", "list")


def test_publish_list_unpublish_from_the_command_line(env):
    run("hashes", "banks", "create", "spam-pdq", "--kind", "pdq")
    run("hashes", "banks", "create", "fine", "--kind", "pdq", "--action", "allow")
    refused = run("feeds", "publish", "fine", "--category", "spam", code=1)
    assert "only reject and review banks" in refused
    inbox = "http://b.example:8790/feeds/v1/inbox"
    shown = run(
        "feeds", "publish", "spam-pdq", "--category", "spam", "--as", "spam", "--push", inbox
    )
    assert "/feeds/v1/spam" in shown
    listed = run("feeds", "list")
    assert "spam-pdq" in listed and inbox in listed
    run("feeds", "unpublish", "spam")
    assert "published spam: bank spam-pdq, spam, 0 entries, not served" in run("feeds", "list")


def test_the_feed_answers_304_while_nothing_changed_and_shows_its_key(publisher):
    publisher.banks.ensure_bank("spam-pdq", BankKind.PDQ, BankAction.REJECT, "spam")
    publisher.banks.add("spam-pdq", [NewEntry(HASHES[0], "test", "admin", "spam")])
    publisher.feeds.publish("spam-pdq", Category.SPAM)
    url = publisher.feed_url("spam-pdq")
    deadline = time.monotonic() + 10
    while publisher.feeds.feeds.feed("spam-pdq").head < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    first = httpx.get(url, params={"cursor": 1}, timeout=10)
    assert first.status_code == 200 and first.json()["batch"]["entries"] == []
    again = httpx.get(url, params={"cursor": 1}, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    publisher.banks.add("spam-pdq", [NewEntry(HASHES[1], "test", "admin", "spam")])
    deadline = time.monotonic() + 10
    while publisher.feeds.feeds.feed("spam-pdq").head < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    changed = httpx.get(url, params={"cursor": 1}, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and len(changed.json()["batch"]["entries"]) == 1
    assert httpx.get(publisher.feed_url("nothing"), timeout=10).status_code == 404

    key = httpx.get(f"{publisher.url}/.well-known/warden-feed-key", timeout=10).json()
    assert key["fingerprint"] == publisher.feeds.signer.fingerprint
    assert set(key) == {"algorithm", "key", "fingerprint", "protocol"}
