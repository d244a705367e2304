"""The external-scan service under load: concurrency limits, timeouts, failure modes,
throttling back-off, the decisions log, the flag bank, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest

from tests.conftest import encode, gradient
from tests.scanners import doubles
from warden.config import load_settings
from warden.domain.scanners import RunOn, ScannerFailMode, ScanTrigger
from warden.domain.verdict import Decision, FrameHash, Reason, Verdict
from warden.services.external_scan import (
    ConfiguredScanner,
    ExternalScans,
    bank_flagger,
    build_external_scans,
)

JPEG = encode(gradient(320, 240, seed=3))
SHA = hashlib.sha256(JPEG).hexdigest()


def model_says(decision: Decision = Decision.ACCEPT) -> Verdict:
    reasons = (Reason("label_review", "model: review"),) if decision is Decision.REVIEW else ()
    return Verdict(decision, reasons, sha256=SHA, size=len(JPEG))


def settings_for(vendor: str, tmp_path, **scanner: object):
    table = {
        "name": "pdna",
        "kind": "photodna",
        "url": f"{vendor}/photodna/v1.0/Match",
        "secret": doubles.PHOTODNA_KEY,
        **scanner,
    }
    return load_settings(None, data_dir=tmp_path, scanners={"external": [table]})


def test_no_scanner_configured_builds_nothing(settings):
    assert build_external_scans(settings) is None


async def test_concurrency_limit_holds_under_load(vendor, state, tmp_path):
    state.mode, state.slow_s = "slow", 0.2
    scans = build_external_scans(settings_for(vendor, tmp_path, concurrency=3, timeout_s=10))
    assert scans is not None
    try:
        verdicts = await asyncio.gather(
            *(scans.apply(model_says(), JPEG, "image/jpeg", "upload") for _ in range(12))
        )
    finally:
        await scans.aclose()
    assert all(v.decision is Decision.ACCEPT for v in verdicts)
    assert state.requests == 12
    assert state.max_in_flight == 3


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (ScannerFailMode.CLOSED, Decision.REJECT),
        (ScannerFailMode.OPEN, Decision.ACCEPT),
        (ScannerFailMode.SKIP, Decision.ACCEPT),
    ],
)
async def test_failure_modes_under_load(vendor, state, tmp_path, mode, expected):
    state.mode = "error"
    scans = build_external_scans(settings_for(vendor, tmp_path, fail_mode=mode.value))
    assert scans is not None
    try:
        verdicts = await asyncio.gather(
            *(scans.apply(model_says(), JPEG, "image/jpeg", "upload") for _ in range(20))
        )
    finally:
        await scans.aclose()
    assert {v.decision for v in verdicts} == {expected}
    reason = next(r for r in verdicts[0].reasons if r.code == "scanner_unavailable")
    assert reason.detail["fail_mode"] == mode.value
    assert reason.detail["error"] == "scanner_unavailable"


async def test_timeout_gives_the_failure_mode_in_time(vendor, state, tmp_path):
    state.mode, state.slow_s = "slow", 3.0
    scans = build_external_scans(settings_for(vendor, tmp_path, timeout_s=0.3, concurrency=1))
    assert scans is not None
    try:
        verdicts = await asyncio.gather(
            *(scans.apply(model_says(), JPEG, "image/jpeg", "upload") for _ in range(4))
        )
    finally:
        await scans.aclose()
    for verdict in verdicts:
        assert verdict.decision is Decision.REJECT
        assert verdict.reasons[0].detail["error"] == "scanner_timeout"
    # a queued request waits for a slot inside its own timeout: none waits 4 x 0.3 s
    assert max(v.timings["scanner:pdna"] for v in verdicts) < 2000


async def test_throttled_scanner_is_left_alone_until_retry_after(vendor, state, tmp_path):
    now = [1000.0]
    settings = settings_for(vendor, tmp_path, fail_mode="open")
    built = build_external_scans(settings)
    assert built is not None
    scans = ExternalScans(built.scanners, client=built.client, clock=lambda: now[0])
    state.mode, state.retry_after = "throttle", "30"
    try:
        first = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
        assert first.reasons[0].detail["error"] == "scanner_throttled"
        for _ in range(10):  # inside Retry-After: answered at once, nothing sent
            again = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
            assert again.decision is Decision.ACCEPT  # fail_mode open
            assert again.reasons[0].detail["error"] == "scanner_throttled"
        assert state.requests == 1
        state.mode = "ok"
        now[0] += 31
        later = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
        assert later.reasons[0].code == "scanner_clear"
        assert state.requests == 2
    finally:
        await scans.aclose()


async def test_external_verdict_is_recorded_with_labels_and_latency(vendor, state, tmp_path):
    state.hits.add(SHA)
    scans = build_external_scans(settings_for(vendor, tmp_path))
    assert scans is not None
    try:
        verdict = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
    finally:
        await scans.aclose()
    assert verdict.decision is Decision.REJECT
    first = verdict.reasons[0]
    assert first.code == "scanner_reject"
    assert first.detail["scanner"] == "pdna" and first.detail["kind"] == "photodna"
    assert first.detail["labels"]["IsMatch"] is True
    assert first.detail["latency_ms"] > 0
    assert verdict.timings["scanner:pdna"] > 0
    # a PhotoDNA match is a known-CSAM match: API callers get no detail of it
    from warden.web.disclosure import NEUTRAL_MATCH, public_verdict

    assert first.detail["csam"] is True
    shown = public_verdict(verdict.as_dict())
    assert shown["details"][0]["detail"] == {} and shown["messages"][0] == NEUTRAL_MATCH


async def test_triggers_decide_who_is_asked(vendor, state, tmp_path):
    scans = build_external_scans(
        settings_for(vendor, tmp_path, run_on="remote", only_review=True, min_bytes=100)
    )
    assert scans is not None
    try:
        unchanged = await scans.apply(model_says(Decision.REVIEW), JPEG, "image/jpeg", "upload")
        assert unchanged == model_says(Decision.REVIEW)
        await scans.apply(model_says(Decision.ACCEPT), JPEG, "image/jpeg", "remote")
        assert state.requests == 0
        asked = await scans.apply(model_says(Decision.REVIEW), JPEG, "image/jpeg", "remote")
        assert [r.code for r in asked.reasons] == ["label_review", "scanner_clear"]
        assert state.requests == 1
    finally:
        await scans.aclose()


async def test_secrets_never_reach_the_logs(vendor, state, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    settings = load_settings(
        None,
        data_dir=tmp_path,
        scanners={
            "external": [
                {
                    "name": "pdna",
                    "kind": "photodna",
                    "url": f"{vendor}/photodna/v1.0/Match",
                    "secret": doubles.PHOTODNA_KEY,
                },
                {
                    "name": "fedi",
                    "kind": "fedi_safety",
                    "url": vendor,
                    "secret_file": str(_write(tmp_path / "id", doubles.PICTRS_ID)),
                },
            ]
        },
    )
    scans = build_external_scans(settings)
    assert scans is not None
    try:
        await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
        state.mode = "error"
        failed = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
    finally:
        await scans.aclose()
    assert "api/v1/scan/***" in caplog.text  # httpx logged the request, redacted
    assert doubles.PICTRS_ID not in caplog.text
    assert doubles.PHOTODNA_KEY not in caplog.text
    assert doubles.PICTRS_ID not in repr(failed.as_dict())


def _write(path, text):
    path.write_text(text + "\n")
    return path


async def test_a_hit_feeds_the_flag_bank_when_enabled(vendor, state, tmp_path):
    from warden.store.banks import BankStore
    from warden.store.database import Database

    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    db.upgrade()
    store = BankStore(db)
    settings = settings_for(vendor, tmp_path, feed_flag_bank=True)
    built = build_external_scans(settings, flagger=bank_flagger(settings, store))
    assert built is not None
    state.hits.add(SHA)
    pdq = "f" * 64
    verdict = Verdict(
        Decision.ACCEPT, (), sha256=SHA, size=len(JPEG), frames=(FrameHash(0, pdq, 100),)
    )
    try:
        await built.apply(verdict, JPEG, "image/jpeg", "upload")
    finally:
        await built.aclose()

    held = {e.bank for e in store.lookup(SHA)} | {e.bank for e in store.lookup(pdq)}
    assert held == {"local-confirmed", "local-confirmed-sha256"}
    db.dispose()


async def test_a_hit_does_not_feed_the_bank_unless_asked(vendor, state, tmp_path):
    fed: list[str] = []
    settings = settings_for(vendor, tmp_path)
    built = build_external_scans(settings, flagger=lambda v, s: fed.append(s))
    assert built is not None
    state.hits.add(SHA)
    try:
        await built.apply(model_says(), JPEG, "image/jpeg", "upload")
    finally:
        await built.aclose()
    assert fed == []


async def test_an_adapter_bug_is_a_failure_not_a_crash():
    class Broken:
        name, kind = "broken", "http"

        async def scan(self, item):
            raise KeyError("oops")

    scans = ExternalScans([ConfiguredScanner(Broken(), ScanTrigger(RunOn.ALL))])
    verdict = await scans.apply(model_says(), JPEG, "image/jpeg", "upload")
    assert verdict.decision is Decision.REJECT
    assert verdict.reasons[0].detail["error"] == "scanner_error"


@pytest.mark.parametrize(
    ("tables", "problem"),
    [
        ([{"name": "h", "kind": "hive", "url": "http://h"}], "needs its API key"),
        (
            [{"name": "p", "kind": "photodna", "url": "http://p", "secret_file": "/nonexistent"}],
            "cannot read",
        ),
        (
            [
                {"name": "same", "kind": "http", "url": "http://a"},
                {"name": "same", "kind": "http", "url": "http://b"},
            ],
            "share a name",
        ),
    ],
)
def test_unusable_scanner_settings_are_refused_at_start(tmp_path, tables, problem):
    from warden.errors import ConfigError

    settings = load_settings(None, data_dir=tmp_path, scanners={"external": tables})
    with pytest.raises(ConfigError, match=problem):
        build_external_scans(settings)
