"""`warden flag` and `warden flag --ban` tell the admins: the `flag_action` and
`ban_action` alerts reach the local receiver (words and hashes, never media), and
nothing is built or sent when no channel is configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.alerts import receiver
from tests.conftest import encode, gradient
from tests.servers.lemmy_double import LemmyDouble, running_double
from warden.cli import app
from warden.config import load_settings
from warden.media.pipeline import ScanContext
from warden.services import build_scanner, lemmy_client
from warden.services.alerts import build_alerts
from warden.services.console_assembly import build_flag_chain
from warden.store.database import Database
from warden.store.decisions import DecisionLog

runner = CliRunner()
IMAGE = encode(gradient(seed=21))


@pytest.fixture
def lemmy() -> Iterator[LemmyDouble]:
    yield from running_double("v3")


def channel(hooks: str) -> str:
    url = f"{hooks}/api/webhooks/1/{receiver.HOOK_TOKEN}"
    return json.dumps([{"name": "mods", "kind": "webhook_json", "url": url}])


def uploaded_by(tmp_path: Path, name: str) -> Path:
    """The image, in the decisions log as uploaded by `name` (as the gate records it)."""
    image = tmp_path / "upload.jpg"
    image.write_bytes(IMAGE)
    db = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    db.upgrade()
    verdict = build_scanner(load_settings(None, data_dir=tmp_path)).scan(
        IMAGE, ScanContext(source="upload")
    )
    DecisionLog(db).record(verdict, source="upload", uploader=name, config_version="t")
    db.dispose()
    return image


def messages(inbox: receiver.Inbox) -> list[str]:
    return [json.loads(r["body"])["content"] for r in inbox.received]


def test_flag_sends_the_flag_action_alert(hooks, inbox, tmp_path, monkeypatch):
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    image = uploaded_by(tmp_path, "")
    env = {"WARDEN_DATA_DIR": str(tmp_path), "WARDEN_ALERTS__CHANNELS": channel(hooks)}
    result = runner.invoke(app, ["flag", str(image), "--by", "admin-ann"], env=env)
    assert result.exit_code == 0, result.output
    assert "alerts: flag_action" in result.output
    [text] = messages(inbox)
    assert text.splitlines()[0] == "[Warden] Media flagged"
    assert "admin-ann flagged file upload.jpg into bank 'local-confirmed'" in text
    body = inbox.received[0]["body"]
    assert IMAGE[:64] not in body and b"base64" not in body  # never the media


def test_flag_ban_sends_flag_and_ban_alerts(hooks, inbox, lemmy, tmp_path, monkeypatch):
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    lemmy.add_user("t-bot", "warden-bot", timedelta(days=900), admin=True)
    bob = lemmy.add_user("t-bob", "bob", timedelta(days=3))
    image = uploaded_by(tmp_path, "bob")
    env = {
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_LEMMY__URL": lemmy.url,
        "WARDEN_LEMMY__API": lemmy.api,
        "WARDEN_LEMMY__BOT_TOKEN": "t-bot",
        "WARDEN_ALERTS__CHANNELS": channel(hooks),
    }
    result = runner.invoke(
        app, ["flag", str(image), "--ban", "--by", "admin-ann", "--reason", "known bad"], env=env
    )
    assert result.exit_code == 0, result.output
    assert lemmy.bans == [(bob.id, "known bad")]
    assert "alerts: flag_action, ban_action" in result.output
    texts = messages(inbox)
    assert [t.splitlines()[0] for t in texts] == [
        "[Warden] Media flagged",
        "[Warden] Uploader banned",
    ]
    assert "admin-ann banned bob." in texts[1] and "- reason: known bad" in texts[1]


def test_flag_without_channels_sends_nothing(hooks, inbox, tmp_path, monkeypatch):
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    image = uploaded_by(tmp_path, "")
    result = runner.invoke(app, ["flag", str(image)], env={"WARDEN_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "alerts:" not in result.output
    assert inbox.received == []


async def test_the_consoles_flag_chain_sends_the_same_alerts(
    hooks, inbox, lemmy, tmp_path, monkeypatch
):
    """The console's Flag button runs services/flag_chain.py with the running
    Warden's alerts: its bank and ban steps tell the admins as `warden flag --ban` does."""
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    lemmy.add_user("t-bot", "warden-bot", timedelta(days=900), admin=True)
    bob = lemmy.add_user("t-bob", "bob", timedelta(days=3))
    uploaded_by(tmp_path, "bob")
    settings = load_settings(
        None,
        data_dir=tmp_path,
        lemmy={"url": lemmy.url, "api": lemmy.api, "bot_token": "t-bot"},
        alerts={"channels": json.loads(channel(hooks))},
    )
    alerts = build_alerts(settings)
    assert alerts is not None
    alerts.start()
    db = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    client = lemmy_client(settings)
    try:
        chain = build_flag_chain(settings, db, evidence=None, lemmy=client, alerts=alerts)
        [record] = DecisionLog(db).recent(limit=1)
        result = await chain.run(
            record.id, actor="admin-ann", reason="known bad", steps=("bank", "ban")
        )
        assert result.ok, result.steps
        await alerts.drain()
    finally:
        await alerts.aclose()
        await client.http.aclose()
        db.dispose()
    assert lemmy.bans == [(bob.id, "known bad")]
    texts = messages(inbox)
    assert [t.splitlines()[0] for t in texts] == [
        "[Warden] Media flagged",
        "[Warden] Uploader banned",
    ]
    assert "admin-ann banned bob." in texts[1]
