"""The media gate with external scanners and alerts: the real scanner and model, a real
decisions log, the PhotoDNA double, and an alert webhook on loopback."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import encode, gradient
from tests.scanners import doubles
from tests.web.gate import gate_services, gate_settings
from warden.domain.verdict import Decision
from warden.media.pipeline import ScanContext

ORDINARY = encode(gradient(480, 360, seed=5))


def settings_for(vendor: str, tmp_path, **scanner: object):
    table = {
        "name": "pdna",
        "kind": "photodna",
        "url": f"{vendor}/photodna/v1.0/Match",
        "secret": doubles.PHOTODNA_KEY,
        **scanner,
    }
    channel = {"name": "mods", "kind": "webhook_json", "url": f"{vendor}/hook"}
    return gate_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'w.db'}",
        scanners={"external": [table]},
        alerts={"channels": [channel]},
    )


async def _check(services, data: bytes):
    await services.start()
    try:
        outcome = await services.gate.check(data, ScanContext(source="upload"))
        if services.alerts is not None:
            await services.alerts.drain()
        record = services.decisions.get(outcome.decision_id)
    finally:
        await services.aclose()
    return outcome, record


async def test_a_photodna_match_is_refused_logged_and_alerted(vendor, state, tmp_path, classifier):
    state.hits.add(hashlib.sha256(ORDINARY).hexdigest())
    services = gate_services(settings_for(vendor, tmp_path), classifier)
    outcome, record = await _check(services, ORDINARY)
    assert outcome.verdict.decision is Decision.REJECT
    assert record is not None and record.verdict.decision is Decision.REJECT
    first = record.verdict.reasons[0]  # the decisions log says which scanner, what, how long
    assert first.code == "scanner_reject"
    assert first.detail["scanner"] == "pdna"
    assert first.detail["labels"]["IsMatch"] is True
    assert first.detail["latency_ms"] > 0
    assert [a["content"].splitlines()[0] for a in state.hook] == [
        "[Warden] Known-CSAM match (PhotoDNA)"
    ]


@pytest.mark.parametrize(
    ("mode", "expected"), [("closed", Decision.REJECT), ("open", Decision.ACCEPT)]
)
async def test_a_scanner_down_answers_with_its_failure_mode(
    vendor, state, tmp_path, classifier, mode, expected
):
    state.mode = "error"
    services = gate_services(settings_for(vendor, tmp_path, fail_mode=mode), classifier)
    outcome, record = await _check(services, ORDINARY)
    assert outcome.verdict.decision is expected
    assert record is not None
    failure = next(r for r in record.verdict.reasons if r.code == "scanner_unavailable")
    assert failure.detail["fail_mode"] == mode
    alerted = [a["content"].splitlines()[0] for a in state.hook]
    if mode == "closed":
        assert alerted == ["[Warden] The media gate is failing closed"]
    else:
        assert alerted == []


def test_nothing_is_built_when_nothing_is_configured(tmp_path, classifier):
    settings = gate_settings(tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    services = gate_services(settings, classifier)
    try:
        assert services.external is None and services.alerts is None
    finally:
        services.scanner.close()
        services.database.dispose()
