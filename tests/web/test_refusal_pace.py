"""The refusal tarpit and the bytes-only fast lane of the media gate (issue 12: ordinary
uploads during a storm of bombs).

A decoding refusal is answered no sooner than `server.refusal_pace_ms` after its scan
began, its decision row written first; accepted uploads and refusals for a label are
never held, and the pace never takes more than half the deadline. A file refused from
its bytes is decided without a decoder, with the verdict the scanner itself gives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import bombs
from tests.conftest import encode, gradient
from tests.web.gate import FACE_REJECT, gate_settings
from tests.web.test_bomb_storm import _Exploding
from warden.errors import TooManyScans
from warden.media.preflight import DecodeLimits, count_up_to, preflight
from warden.services import Services
from warden.services.gate import decoding_refusals
from warden.web.app import create_app

UPLOAD = "/pictrs/validate?source=upload"


def _client(services: Services) -> httpx.AsyncClient:
    app = create_app(services.settings, services)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://warden", timeout=60
    )


@pytest.fixture
def build(tmp_path, db_url, classifier, gate_services_tracked) -> Iterator[Any]:
    built: list[Services] = []

    def make(pace_ms: int, **overrides: Any) -> Services:
        server = {"refusal_pace_ms": pace_ms, **overrides.pop("server", {})}
        settings = gate_settings(tmp_path, db_url, server=server, **overrides)
        services = gate_services_tracked(settings, classifier)
        built.append(services)
        return services

    yield make
    for services in built:
        services.scanner.close()


async def test_a_bomb_is_held_to_the_pace_and_its_row_is_written_before_the_answer(build):
    services = build(2_000)
    assert services.decisions is not None
    async with _client(services) as client:
        started = time.monotonic()
        answer = asyncio.create_task(client.post(UPLOAD, content=bombs.webp_tiny_huge()))
        while not services.decisions.recent(limit=1) and time.monotonic() - started < 1.8:
            await asyncio.sleep(0.02)
        row_seen_after = time.monotonic() - started
        rows = services.decisions.recent(limit=1)
        assert rows and rows[0].verdict.codes == ["too_many_pixels"]
        assert not answer.done(), f"answered before the pace (row seen at {row_seen_after:.2f} s)"
        refused = await answer
        elapsed = time.monotonic() - started
    assert refused.status_code == 422 and refused.json()["error"] == "too_many_pixels"
    assert elapsed >= 2.0


async def test_accepted_uploads_and_label_refusals_are_never_held(build, astronaut):
    services = build(20_000, **FACE_REJECT)  # held, these would take 12.5 s (half of 25)
    async with _client(services) as client:
        await client.post(UPLOAD, content=encode(gradient(320, 240)))  # warm the model
        started = time.monotonic()
        accepted = await client.post(UPLOAD, content=encode(gradient(800, 600)))
        labelled = await client.post(UPLOAD, content=encode(astronaut))
        elapsed = time.monotonic() - started
    assert accepted.status_code == 200, accepted.text
    assert labelled.status_code == 422 and labelled.json()["error"] == "label_reject"
    assert elapsed < 10.0


async def test_the_pace_takes_at_most_half_the_deadline(build):
    services = build(20_000, server={"deadline_upload_ms": 3_000})
    async with _client(services) as client:
        started = time.monotonic()
        answer = await client.post(UPLOAD, content=bombs.gif_tiny_huge())  # refused decoding
        elapsed = time.monotonic() - started
    assert answer.status_code == 422 and answer.json()["error"] == "too_many_pixels"
    assert 1.5 <= elapsed < 10.0


async def test_a_pace_of_zero_holds_nothing(build):
    services = build(0, server={"deadline_upload_ms": 20_000})
    async with _client(services) as client:
        started = time.monotonic()
        answer = await client.post(UPLOAD, content=b"not an image at all")
        elapsed = time.monotonic() - started
    assert answer.status_code == 422 and answer.json()["error"] == "unsupported_format"
    assert elapsed < 5.0  # paced, it would have been held 10 s


async def test_a_file_refused_from_its_bytes_takes_no_decoder_and_gets_the_scanners_verdict(
    build,
):
    services = build(0)
    assert services.decisions is not None
    bomb = bombs.progressive_scan_bomb(5000)
    expected = services.scanner.scan(bomb)  # the scanner's own verdict, decoder and all
    services.scanner.decoder = _Exploding()  # any decode now fails as scan_error
    async with _client(services) as client:
        answer = await client.post(UPLOAD, content=bomb)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "too_many_scans"
    row = services.decisions.recent(limit=1)[0].verdict
    assert [(r.code, r.message) for r in row.reasons] == [
        (r.code, r.message) for r in expected.reasons
    ]
    assert row.sha256 == expected.sha256 and row.size == expected.size


def test_every_decoding_refusal_code_is_paced_and_nothing_else():
    codes = decoding_refusals()
    assert {"too_many_pixels", "too_many_scans", "corrupt_media", "decode_timeout"} <= codes
    assert {"unsupported_format", "empty_media", "truncated_media", "polyglot_media"} <= codes
    assert not codes & {"label_reject", "label_review", "hash_match", "scan_timeout", "scan_error"}


def test_the_scan_count_stops_early_yet_refuses_and_counts_as_before():
    limits = DecodeLimits()
    bomb = bombs.progressive_scan_bomb(5000)
    assert count_up_to(bomb, b"\xff\xda", 101) == 101 < bomb.count(b"\xff\xda")
    with pytest.raises(TooManyScans, match="more than 100 scans; the limit is 100"):
        preflight(bomb, limits)
    ordinary = encode(gradient(640, 480))
    assert count_up_to(ordinary, b"\xff\xda", 101) == ordinary.count(b"\xff\xda") >= 1
    within = bombs.progressive_scan_bomb(limits.max_scans - 6, side=64)  # 6 + 94 scans
    assert count_up_to(within, b"\xff\xda", 101) == within.count(b"\xff\xda")
    preflight(within, limits)  # at the limit: passes the byte checks


async def test_bombers_that_wait_for_each_answer_are_held_to_connections_over_the_pace(build):
    """The tarpit's point: 10 clients each sending their next bomb when the last is
    answered get at most 10 / 0.5 s = 20 answers a second (unpaced: hundreds)."""
    services = build(500)
    answered: list[int] = []

    async def bomber(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            answer = await client.post(UPLOAD, content=bombs.webp_tiny_huge())
            answered.append(answer.status_code)

    async with _client(services) as client:
        await client.post(UPLOAD, content=encode(gradient(64, 64)))  # warm
        started = time.monotonic()
        await asyncio.gather(*(bomber(client, started + 2.0) for _ in range(10)))
        elapsed = time.monotonic() - started
    assert set(answered) == {422}
    assert len(answered) <= 10 * (elapsed / 0.5 + 1), (len(answered), elapsed)
