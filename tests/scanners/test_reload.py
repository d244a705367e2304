"""`Services.reload()` (SIGHUP) rebuilds the external scanners and the alert channels:
a changed scanner, a rotated secret file and a new channel are in force at once,
links and dedup survive, and settings that cannot be built keep the old ones."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import encode, gradient
from tests.scanners import doubles
from tests.web.gate import gate_services
from warden.config import load_settings
from warden.domain.verdict import Decision
from warden.errors import ConfigError
from warden.media.pipeline import ScanContext
from warden.store.quarantine import generate_key

ORDINARY = encode(gradient(480, 360, seed=11))
SHA = hashlib.sha256(ORDINARY).hexdigest()


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


def write_config(
    path: Path, tmp_path: Path, scanners: list[dict[str, Any]], channels: list[dict[str, Any]]
) -> None:
    lines = [
        f"data_dir = {toml_value(tmp_path / 'data')}",
        "[database]",
        f"url = {toml_value('sqlite:///' + str(tmp_path / 'w.db'))}",
        "[evidence]",
        f"key = {toml_value(KEY)}",
        "[server]",
        "batch_window_ms = 2.0",
    ]
    for table in scanners:
        lines.append("[[scanners.external]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    for table in channels:
        lines.append("[[alerts.channels]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")


KEY = generate_key()


def generic(vendor: str, name: str, secret_file: Path, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "http",
        "url": f"{vendor}/generic/scan",
        "secret_file": str(secret_file),
        "decision_field": "result.action",
        "reject_values": ["block"],
        "accept_values": ["pass"],
        **more,
    }


def hook(vendor: str, name: str = "mods", events: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "kind": "webhook_json", "url": f"{vendor}/hook", "events": events or []}


async def check(services: Any) -> Any:
    outcome = await services.gate.check(ORDINARY, ScanContext(source="upload"))
    if services.alerts is not None:
        await services.alerts.drain()
    return outcome.verdict


async def test_reload_rebuilds_scanners_and_alerts(vendor, state, tmp_path, classifier):
    config = tmp_path / "warden.toml"
    token = tmp_path / "token"
    token.write_text("Bearer stale-token\n")  # wrong: the double answers 401
    write_config(config, tmp_path, [generic(vendor, "first", token)], [])
    services = gate_services(load_settings(config), classifier, config_path=config)
    await services.start()
    try:
        before = await check(services)
        assert before.decision is Decision.REJECT  # 401 -> failure, closed by default
        assert before.reasons[0].detail["scanner"] == "first"
        assert services.alerts is None
        old_external = services.external

        # the admin rotates the key, renames the scanner, fails it open, adds a channel
        token.write_text(doubles.GENERIC_TOKEN + "\n")
        state.hits.add(SHA)
        write_config(
            config,
            tmp_path,
            [generic(vendor, "second", token, fail_mode="open")],
            [hook(vendor)],
        )
        services.reload()
        assert services.gate.external is services.external is not old_external
        assert services.gate.alerts is services.alerts is not None

        after = await check(services)
        assert after.decision is Decision.REJECT
        first = after.reasons[0]
        assert (first.code, first.detail["scanner"]) == ("scanner_reject", "second")
        assert state.seen_headers[-1]["authorization"] == doubles.GENERIC_TOKEN

        # a scanner down now fails open (the new mode) and alerts nobody about it
        state.mode = "error"
        state.hits.clear()
        down = await check(services)
        assert down.decision is Decision.ACCEPT
        assert [a["content"].splitlines()[0] for a in state.hook] == []
    finally:
        await services.aclose()
    assert old_external is not None and old_external.client is not None
    assert old_external.client.is_closed  # retired once nothing was in flight


async def test_a_reload_that_cannot_be_built_keeps_everything(vendor, state, tmp_path, classifier):
    config = tmp_path / "warden.toml"
    token = tmp_path / "token"
    token.write_text(doubles.GENERIC_TOKEN)
    write_config(config, tmp_path, [generic(vendor, "kept", token)], [hook(vendor)])
    services = gate_services(load_settings(config), classifier, config_path=config)
    await services.start()
    try:
        external, alerts, version = services.external, services.alerts, services.gate.config_version
        # send = "url" without scanners.media_url_base cannot be built
        write_config(config, tmp_path, [generic(vendor, "new", token, send="url")], [])
        with pytest.raises(ConfigError, match="media_url_base"):
            services.reload()
        assert services.external is external and services.gate.external is external
        assert services.alerts is alerts and services.gate.config_version == version
        assert services.settings.scanners.external[0].name == "kept"
        state.hits.add(SHA)
        verdict = await check(services)
        assert verdict.reasons[0].detail["scanner"] == "kept"
    finally:
        await services.aclose()


async def test_alert_dedup_survives_a_reload(vendor, state, tmp_path, classifier):
    """A flood across a reload: the same key is not sent again within repeat_after_s."""
    config = tmp_path / "warden.toml"
    token = tmp_path / "token"
    token.write_text(doubles.GENERIC_TOKEN)
    write_config(config, tmp_path, [generic(vendor, "g", token)], [hook(vendor)])
    services = gate_services(load_settings(config), classifier, config_path=config)
    await services.start()
    try:
        state.mode = "error"  # closed: every upload refused, "failing closed" alert
        await check(services)
        old_alerts = services.alerts
        write_config(config, tmp_path, [generic(vendor, "g", token)], [hook(vendor, "renamed")])
        await asyncio.to_thread(services.reload)  # as POST /api/v1/admin/reload runs it
        assert services.alerts is not old_alerts
        await check(services)
        await check(services)
        alerted = [a["content"].splitlines()[0] for a in state.hook]
        assert alerted == ["[Warden] The media gate is failing closed"]
    finally:
        await services.aclose()
    assert old_alerts is not None and old_alerts.client is not None
    assert old_alerts.client.is_closed
