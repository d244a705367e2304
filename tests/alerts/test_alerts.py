"""Alerts end to end: events from decisions, dedup and rate limits, every channel kind
delivering to a local receiver, and no secret in a log line or a message."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest

from tests.alerts import receiver
from warden.config import load_settings
from warden.domain.verdict import Decision, Reason, Verdict
from warden.services.alerts import build_alerts

SIGNING_KEY = "signing-key-4e8d2a71"
SMTP_PASSWORD = "smtp-password-b83f10"


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refused(code: str = "label_reject", **detail: object) -> Verdict:
    return Verdict(Decision.REJECT, (Reason(code, code, detail),), sha256="ab" * 32, size=10)


def csam(bank: str) -> Verdict:
    match = {"bank": bank, "csam": True, "action": "reject", "entry": 1}
    return Verdict(
        Decision.REJECT,
        (Reason("hash_match", f"matches {bank}", match),),
        sha256="cd" * 32,
        size=10,
        matches=(match,),
    )


def discord_settings(hooks: str, tmp_path, *, events=(), **alerts: object):
    channel = {
        "name": "mods",
        "kind": "webhook_json",
        "url": f"{hooks}/api/webhooks/1/{receiver.HOOK_TOKEN}",
        "events": list(events),
    }
    return load_settings(None, data_dir=tmp_path, alerts={"channels": [channel], **alerts})


def contents(inbox) -> list[str]:
    return [json.loads(r["body"])["content"] for r in inbox.received]


def test_no_channel_configured_builds_nothing(settings):
    assert build_alerts(settings) is None


async def test_a_simulated_spike_produces_exactly_the_expected_messages(hooks, inbox, tmp_path):
    settings = discord_settings(
        hooks,
        tmp_path,
        spike_window_s=300,
        spike_baseline_s=3600,
        spike_factor=4,
        spike_min_refusals=20,
        repeat_after_s=900,
    )
    clock = Clock(10_000.0)
    alerts = build_alerts(settings)
    assert alerts is not None
    alerts.clock = clock
    start = clock.now
    for k in range(12):  # the baseline: a refusal every five minutes for an hour
        clock.now = start + k * 300
        alerts.observe(refused(), source="upload")
    burst = start + 3600
    for i in range(100):  # the attack: 100 refusals in 50 s
        clock.now = burst + i * 0.5
        alerts.observe(refused(), source="upload")
    second = burst + 1000
    for i in range(60):  # it goes on after the repeat interval
        clock.now = second + i * 0.5
        alerts.observe(refused(), source="upload")
    await alerts.drain()
    await alerts.aclose()
    texts = contents(inbox)
    assert len(texts) == 2, texts
    # 12 in the baseline hour predict 1 in five minutes; 20 (the minimum) is the spike
    assert "20 refusals in the last 300 s (the baseline predicts 1.0)" in texts[0]
    # the baseline now holds the first burst: 9 + 100 refusals predict 9.1, x4 -> 37
    assert "37 refusals in the last 300 s (the baseline predicts 9.1)" in texts[1]
    assert "(80 more like this since the last message)" in texts[1]


async def test_a_flood_gives_one_message_per_key(hooks, inbox, tmp_path):
    settings = discord_settings(hooks, tmp_path, events=["csam_match", "gate_failing_closed"])
    alerts = build_alerts(settings)
    assert alerts is not None
    for i in range(1000):
        alerts.observe(csam("ncmec" if i % 2 else "local-csam"), source="upload")
        alerts.observe(refused("model_unavailable", fail_mode="closed"), source="upload")
        alerts.observe(refused("model_unavailable", fail_mode="open"), source="remote")
    await alerts.drain()
    await alerts.aclose()
    texts = contents(inbox)
    assert len(texts) == 3
    assert sum("Known-CSAM match" in t for t in texts) == 2
    assert sum("failing closed" in t and "model_unavailable" in t for t in texts) == 1
    assert all("- sha256: " + "cd" * 32 in t for t in texts if "CSAM" in t)


async def test_channels_have_an_hourly_budget(hooks, inbox, tmp_path):
    settings = discord_settings(hooks, tmp_path, max_per_hour=5)
    clock = Clock()
    alerts = build_alerts(settings)
    assert alerts is not None
    alerts.clock = clock
    for i in range(50):
        alerts.flag_action(by="admin", bank=f"bank-{i}", hashes=1)
    await alerts.drain()
    assert len(inbox.received) == 5
    clock.now += 3601
    alerts.ban_action(by="admin", user="spammer@example.org")
    await alerts.drain()
    await alerts.aclose()
    assert len(inbox.received) == 6
    assert "spammer@example.org" in contents(inbox)[-1]


async def test_every_channel_kind_delivers(hooks, smtp, inbox, tmp_path):
    key_file = tmp_path / "matrix-token"
    key_file.write_text(receiver.MATRIX_TOKEN + "\n")
    channels = [
        {
            "name": "discord",
            "kind": "webhook_json",
            "url": f"{hooks}/api/webhooks/1/{receiver.HOOK_TOKEN}",
        },
        {"name": "slack", "kind": "webhook_json", "url": f"{hooks}/services/T/B/xyz"},
        {
            "name": "room",
            "kind": "matrix",
            "url": hooks,
            "room_id": "!mods:example.org",
            "secret_file": str(key_file),
        },
        {"name": "ops", "kind": "signed_webhook", "url": f"{hooks}/signed", "secret": SIGNING_KEY},
        {
            "name": "mail",
            "kind": "smtp",
            "smtp_port": smtp,
            "smtp_user": "warden",
            "secret": SMTP_PASSWORD,
            "mail_to": ["admins@example.org"],
        },
    ]
    settings = load_settings(None, data_dir=tmp_path, alerts={"channels": channels})
    alerts = build_alerts(settings)
    assert alerts is not None
    alerts.observe(csam("ncmec"), source="upload", uploader="alice@example.org")
    await alerts.drain()
    await alerts.aclose()
    by_kind = {r["kind"]: r for r in inbox.received}
    assert set(by_kind) == {"discord", "slack", "matrix", "signed", "smtp"}

    slack = json.loads(by_kind["slack"]["body"])
    assert "Known-CSAM match" in slack["text"] and slack["text"] == slack["content"]

    room = by_kind["matrix"]
    assert room["path"].startswith(
        "/_matrix/client/v3/rooms/!mods:example.org/send/m.room.message/"
    )
    assert json.loads(room["body"])["msgtype"] == "m.notice"

    signed = by_kind["signed"]
    stamp = signed["headers"]["x-warden-timestamp"]
    expected = hmac.new(
        SIGNING_KEY.encode(), stamp.encode() + b"." + signed["body"], hashlib.sha256
    ).hexdigest()
    assert signed["headers"]["x-warden-signature"] == f"sha256={expected}"
    payload = json.loads(signed["body"])
    assert payload["event"] == "csam_match" and payload["facts"]["bank"] == "ncmec"

    mail = by_kind["smtp"]
    assert mail["rcpt"] == ["admins@example.org"]
    assert mail["auth"] == [b"warden", SMTP_PASSWORD.encode()]
    assert b"Subject: [Warden] Known-CSAM match" in mail["body"]

    for r in inbox.received:  # words only: no secret, no media in any message
        for secret in (SIGNING_KEY, SMTP_PASSWORD, receiver.MATRIX_TOKEN, receiver.HOOK_TOKEN):
            assert secret.encode() not in r["body"]


async def test_secrets_stay_out_of_the_logs(hooks, inbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    settings = discord_settings(hooks, tmp_path)
    alerts = build_alerts(settings)
    assert alerts is not None
    inbox.fail = True
    alerts.observe(refused("store_error", fail_mode="closed"), source="upload")
    await alerts.drain()
    await alerts.aclose()
    assert "not delivered: mods: answered 500" in caplog.text
    assert receiver.HOOK_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        ({"name": "x", "kind": "matrix", "url": "http://h", "secret": "t"}, "room_id"),
        ({"name": "x", "kind": "signed_webhook", "url": "http://h"}, "secret"),
        ({"name": "x", "kind": "webhook_json"}, "url"),
        ({"name": "x", "kind": "webhook_json", "url": "http://h", "events": ["oops"]}, "oops"),
    ],
)
def test_incomplete_channels_are_refused_at_start(tmp_path, channel, problem):
    from warden.errors import ConfigError

    settings = load_settings(None, data_dir=tmp_path, alerts={"channels": [channel]})
    with pytest.raises(ConfigError, match=problem):
        build_alerts(settings)


def test_spike_detector_memory_stays_bounded_in_a_flood():
    from warden.services.alerts import SpikeDetector

    spikes = SpikeDetector(window_s=300, baseline_s=3600, factor=4, min_refusals=20)
    for i in range(200_000):  # 20 refusals a second for almost three hours
        spikes.record(i / 20)
    assert len(spikes.recent) + len(spikes.older) <= 300 + 3600 + 2
    assert spikes.recent_sum == 300 * 20
