"""Each adapter against its vendor's double: verdicts, refusals, throttling, bad answers."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import encode, gradient
from tests.scanners import doubles
from warden.adapters.scanners.fedi_safety import FediSafetyScanner
from warden.adapters.scanners.hive import HiveScanner
from warden.adapters.scanners.http import HttpScanner
from warden.adapters.scanners.interface import Submission, retry_after
from warden.adapters.scanners.photodna import PhotoDnaScanner
from warden.domain.verdict import Decision
from warden.errors import (
    ScannerBadAnswer,
    ScannerRefused,
    ScannerThrottled,
    ScannerUnavailable,
)

JPEG = encode(gradient(320, 240, seed=1))
OTHER = encode(gradient(320, 240, seed=2))


def item(data: bytes = JPEG, mime: str = "image/jpeg") -> Submission:
    return Submission(data, mime, hashlib.sha256(data).hexdigest())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- PhotoDNA ---------------------------------------------------------------------


def photodna(vendor, client, key=doubles.PHOTODNA_KEY) -> PhotoDnaScanner:
    return PhotoDnaScanner("pdna", f"{vendor}/photodna/v1.0/Match", client, key=key)


async def test_photodna_match_refuses_with_its_tracking_id_and_source(vendor, state, client):
    state.hits.add(sha(JPEG))
    answer = await photodna(vendor, client).scan(item())
    assert answer.decision is Decision.REJECT
    assert answer.labels["IsMatch"] is True
    assert answer.labels["TrackingId"].startswith("1_photodna_")
    assert answer.labels["MatchFlags"] == [{"source": "Test", "MatchId": "104149"}]
    clear = await photodna(vendor, client).scan(item(OTHER))
    assert clear.decision is Decision.ACCEPT and clear.labels["IsMatch"] is False
    assert state.seen_headers[0]["ocp-apim-subscription-key"] == doubles.PHOTODNA_KEY


async def test_photodna_errors(vendor, state, client):
    with pytest.raises(ScannerRefused, match="401"):
        await photodna(vendor, client, key="wrong").scan(item())
    state.mode = "status3004"
    with pytest.raises(ScannerUnavailable, match="3004"):
        await photodna(vendor, client).scan(item())
    state.mode = "error"
    with pytest.raises(ScannerUnavailable, match="500"):
        await photodna(vendor, client).scan(item())
    state.mode = "bad_json"
    with pytest.raises(ScannerBadAnswer):
        await photodna(vendor, client).scan(item())


async def test_photodna_throttling_carries_retry_after(vendor, state, client):
    state.mode, state.retry_after = "throttle", "7"
    with pytest.raises(ScannerThrottled) as caught:
        await photodna(vendor, client).scan(item())
    assert caught.value.retry_after_s == 7.0


async def test_photodna_is_not_sent_formats_it_cannot_read(vendor, state, client):
    with pytest.raises(ScannerRefused, match="image/webp"):
        await photodna(vendor, client).scan(item(b"RIFF....WEBP", "image/webp"))
    assert state.requests == 0


# -- Hive ---------------------------------------------------------------------------


def hive(vendor, client, key=doubles.HIVE_KEY) -> HiveScanner:
    return HiveScanner(
        "hive",
        f"{vendor}/api/v2/task/sync",
        client,
        key=key,
        reject_classes={"yes_sexual_activity": 0.9},
        review_classes={"general_nsfw": 0.5},
    )


@pytest.mark.parametrize(
    ("scores", "decision"),
    [
        ({"general_not_nsfw_not_suggestive": 0.98, "general_nsfw": 0.01}, Decision.ACCEPT),
        ({"general_nsfw": 0.7, "general_suggestive": 0.3}, Decision.REVIEW),
        ({"general_nsfw": 0.95, "yes_sexual_activity": 0.93}, Decision.REJECT),
    ],
)
async def test_hive_scores_become_the_admins_decision(vendor, state, client, scores, decision):
    state.hive_scores = {**scores, "no_gun": 0.999, "gun_in_hand": 0.001}
    answer = await hive(vendor, client).scan(item())
    assert answer.decision is decision
    assert answer.labels["no_gun"] == 0.999
    assert "gun_in_hand" not in answer.labels  # below 0.01: not kept
    assert state.seen_headers[0]["authorization"] == f"token {doubles.HIVE_KEY}"
    assert state.seen_headers[0]["content-type"].startswith("multipart/form-data")


async def test_hive_errors(vendor, state, client):
    with pytest.raises(ScannerRefused, match="401"):
        await hive(vendor, client, key="nope").scan(item())
    state.mode, state.retry_after = "throttle", "3"
    with pytest.raises(ScannerThrottled) as caught:
        await hive(vendor, client).scan(item())
    assert caught.value.retry_after_s == 3.0
    state.mode = "error"
    with pytest.raises(ScannerUnavailable):
        await hive(vendor, client).scan(item())
    state.mode = "ok"  # an answer without any class scores is not an accept
    with pytest.raises(ScannerBadAnswer, match="no class scores"):
        await hive(vendor, client).scan(item())


# -- pictrs-safety / fedi-safety ------------------------------------------------------


def fedi(vendor, client, pictrs_id=doubles.PICTRS_ID) -> FediSafetyScanner:
    return FediSafetyScanner("fedi", vendor, client, pictrs_id=pictrs_id)


async def test_fedi_safety_verdicts(vendor, state, client):
    state.hits.add(sha(JPEG))
    hit = await fedi(vendor, client).scan(item())
    assert hit.decision is Decision.REJECT and hit.labels["is_csam"] is True
    clear = await fedi(vendor, client).scan(item(OTHER))
    assert clear.decision is Decision.ACCEPT


@pytest.mark.parametrize("mode", ["stale", "queue_full"])
async def test_fedi_safety_fail_open_answers_are_failures(vendor, state, client, mode):
    """pictrs-safety answers 200 when it did not scan; Warden does not take that as OK."""
    state.mode = mode
    with pytest.raises(ScannerUnavailable, match="did not scan"):
        await fedi(vendor, client).scan(item())


async def test_fedi_safety_refusals(vendor, state, client):
    with pytest.raises(ScannerRefused, match="401"):
        await fedi(vendor, client, pictrs_id="unknown-id").scan(item())
    state.mode = "throttle"
    with pytest.raises(ScannerThrottled):
        await fedi(vendor, client).scan(item())


# -- generic HTTP -----------------------------------------------------------------------


def generic(vendor, client) -> HttpScanner:
    return HttpScanner(
        "generic",
        f"{vendor}/generic/scan",
        client,
        secret=doubles.GENERIC_TOKEN,
        decision_field="result.action",
        reject_values=["block"],
        accept_values=["pass"],
        labels_field="labels",
    )


async def test_generic_mapping(vendor, state, client):
    state.hits.add(sha(JPEG))
    hit = await generic(vendor, client).scan(item())
    assert hit.decision is Decision.REJECT
    assert hit.labels == {"result.action": "block", "labels": {"nsfw": 0.97}}
    assert (await generic(vendor, client).scan(item(OTHER))).decision is Decision.ACCEPT
    assert state.seen_headers[0]["x-warden-sha256"] == sha(JPEG)


async def test_generic_unknown_values_are_not_guessed(vendor, state, client):
    state.mode = "unknown_value"
    with pytest.raises(ScannerBadAnswer, match="'maybe'"):
        await generic(vendor, client).scan(item())
    state.mode = "bad_json"
    with pytest.raises(ScannerBadAnswer, match="not JSON"):
        await generic(vendor, client).scan(item())


async def test_unreachable_scanner_is_unavailable(client):
    from tests.servers.nginx import free_port

    dead = HttpScanner("dead", f"http://127.0.0.1:{free_port()}/x", client)
    with pytest.raises(ScannerUnavailable, match="cannot be reached"):
        await dead.scan(item())


def test_retry_after_reads_seconds_and_dates():
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None
