"""The generic scanner's signed one-time URL mode: the double fetches the media from
Warden's own listener once; a second fetch, an expired link, a forged or revoked one
all fail; known-CSAM matches are never sent out at all."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.conftest import encode, gradient
from tests.scanners import doubles
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import gate_services, gate_settings
from warden.adapters.scanners.media_links import MediaLinks
from warden.config import load_settings
from warden.domain.verdict import Decision, Reason, Verdict
from warden.errors import ConfigError, ScannerRefused
from warden.media.pipeline import ScanContext
from warden.services.external_scan import ExternalScans, build_external_scans
from warden.web.app import create_app

JPEG = encode(gradient(320, 240, seed=7))
SHA = hashlib.sha256(JPEG).hexdigest()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Warden:
    """Warden's app with the real /scanner-media route, served on loopback; the
    services behind it are set once the port (the links' base URL) is known."""

    def __init__(self) -> None:
        self.app: Any = None
        self.served = ServedApp(self)
        self.base = f"http://127.0.0.1:{self.served.port}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def serve(self, settings: Any, external: ExternalScans | MediaLinks | None) -> None:
        if isinstance(external, MediaLinks):
            external = SimpleNamespace(links=external)  # type: ignore[assignment]
        self.app = create_app(settings, SimpleNamespace(external=external))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def warden() -> Iterator[Warden]:
    w = Warden()
    w.app = create_app(load_settings(None), SimpleNamespace(external=None))  # type: ignore[arg-type]
    w.served.start()
    yield w
    w.served.stop()


def by_url_settings(vendor: str, warden: Warden, tmp_path, **scanner: object):
    table = {
        "name": "byurl",
        "kind": "http",
        "url": f"{vendor}/generic/by-url",
        "secret": doubles.GENERIC_TOKEN,
        "send": "url",
        "decision_field": "result.action",
        "reject_values": ["block"],
        "accept_values": ["pass"],
        **scanner,
    }
    return load_settings(
        None,
        data_dir=tmp_path,
        scanners={"external": [table], "media_url_base": warden.base},
    )


def model_says(decision: Decision = Decision.ACCEPT, *, matches: tuple = ()) -> Verdict:
    return Verdict(decision, (), sha256=SHA, size=len(JPEG), matches=matches)


async def scanned(settings, warden: Warden, verdict: Verdict | None = None) -> Verdict:
    scans = build_external_scans(settings)
    assert scans is not None and scans.links is not None
    warden.serve(settings, scans)
    try:
        return await scans.apply(verdict or model_says(), JPEG, "image/jpeg", "upload")
    finally:
        assert len(scans.links) == 0  # nothing is held once the scan is over
        await scans.aclose()


async def test_the_scanner_fetches_the_media_once(vendor, state, warden, tmp_path):
    state.hits.add(SHA)
    state.mode = "refetch"  # the double GETs the link twice
    out = await scanned(by_url_settings(vendor, warden, tmp_path), warden)
    assert out.decision is Decision.REJECT
    assert out.reasons[0].code == "scanner_reject"
    assert [status for _, status in state.fetched] == [200, 410]
    sent = state.sent[0]
    assert sent["sha256"] == SHA and sent["size"] == len(JPEG)
    assert sent["content_type"] == "image/jpeg"
    assert sent["url"].startswith(f"{warden.base}/scanner-media/")
    # the bytes never travelled in the request: only the link did
    assert state.seen_headers[0]["content-type"] == "application/json"
    assert int(state.seen_headers[0]["content-length"]) < 400


async def test_a_used_link_is_gone_and_served_bytes_are_exact(vendor, state, warden, tmp_path):
    out = await scanned(by_url_settings(vendor, warden, tmp_path), warden)
    assert out.decision is Decision.ACCEPT
    url, status = state.fetched[0]
    assert status == 200
    async with httpx.AsyncClient() as client:
        again = await client.get(url)
    assert again.status_code == 410
    assert again.json()["error"] == "media_link_gone"


async def test_a_link_never_fetched_is_revoked_when_the_scan_ends(vendor, state, warden, tmp_path):
    state.mode = "no_fetch"
    await scanned(by_url_settings(vendor, warden, tmp_path), warden)
    async with httpx.AsyncClient() as client:
        late = await client.get(state.sent[0]["url"])
    assert late.status_code == 410


async def test_expired_and_forged_links_fail(warden, tmp_path):
    clock = Clock()
    links = MediaLinks(warden.base, ttl_s=5, clock=clock)
    warden.serve(load_settings(None, data_dir=tmp_path), links)
    expired = links.issue(JPEG, "image/jpeg", SHA)
    good = links.issue(JPEG, "image/jpeg", SHA, ttl_s=600)
    prefix, _, signature = good.url.rpartition(".")
    stamp = good.url.rsplit("/", 1)[1].split(".")[1]
    forged = {
        "signature": f"{prefix}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        "expiry": good.url.replace(f".{stamp}.", f".{int(stamp) + 3600}."),
        "garbage": f"{warden.base}/scanner-media/not-a-token",
        "other_key": MediaLinks(warden.base, ttl_s=5).issue(JPEG, "image/jpeg", SHA).url,
    }
    clock.now += 6
    async with httpx.AsyncClient() as client:
        late = await client.get(expired.url)
        refused = {name: await client.get(url) for name, url in forged.items()}
        served = await client.get(good.url)  # the forgeries did not use it up
    assert late.status_code == 410 and late.json()["error"] == "media_link_gone"
    for name, answer in refused.items():
        assert (name, answer.status_code, answer.json()["error"]) == (name, 404, "not_found")
    assert served.status_code == 200 and served.content == JPEG
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "no-store"


async def test_no_link_store_answers_not_found(warden, tmp_path):
    warden.serve(load_settings(None, data_dir=tmp_path), None)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{warden.base}/scanner-media/a.1.b")
    assert answer.status_code == 404


async def test_csam_matches_are_never_sent_out(vendor, state, warden, tmp_path):
    """Not as bytes, not as a link, whatever the decision (a CSAM bank set to review)."""
    match = {"bank": "ncmec", "csam": True, "action": "review", "entry": 1}
    verdict = Verdict(
        Decision.REVIEW,
        (Reason("hash_match", "matches ncmec", match),),
        sha256=SHA,
        size=len(JPEG),
        matches=(match,),
    )
    bytes_mode = load_settings(
        None,
        data_dir=tmp_path,
        scanners={
            "external": [
                {
                    "name": "generic",
                    "kind": "http",
                    "url": f"{vendor}/generic/scan",
                    "secret": doubles.GENERIC_TOKEN,
                }
            ]
        },
    )
    for settings in (by_url_settings(vendor, warden, tmp_path), bytes_mode):
        scans = build_external_scans(settings)
        assert scans is not None
        try:
            assert await scans.apply(verdict, JPEG, "image/jpeg", "upload") == verdict
        finally:
            await scans.aclose()
    assert state.requests == 0 and state.fetched == []
    with pytest.raises(ScannerRefused, match="never sent"):
        MediaLinks(warden.base, ttl_s=5).issue(JPEG, "image/jpeg", SHA, csam=True)


@pytest.mark.parametrize(
    "scanner",
    [
        {"kind": "http", "url": "http://x/scan", "send": "url"},  # no media_url_base
        {"kind": "photodna", "url": "http://x/Match", "secret": "k", "send": "url"},
    ],
)
def test_url_mode_needs_a_base_and_the_generic_kind(scanner, tmp_path):
    scanners: dict[str, Any] = {"external": [{"name": "s", **scanner}]}
    if scanner["kind"] == "photodna":
        scanners["media_url_base"] = "http://127.0.0.1:8790"
    settings = load_settings(None, data_dir=tmp_path, scanners=scanners)
    with pytest.raises(ConfigError, match="send = 'url'"):
        build_external_scans(settings)


async def test_the_gate_sends_a_link_end_to_end(vendor, state, warden, tmp_path, classifier):
    """The real assembly: `warden serve`'s services and app, the gate asking a URL-mode
    scanner, the scanner fetching from the app, the decision logged with its reason."""
    table = {
        "name": "byurl",
        "kind": "http",
        "url": f"{vendor}/generic/by-url",
        "secret": doubles.GENERIC_TOKEN,
        "send": "url",
        "decision_field": "result.action",
        "reject_values": ["block"],
        "accept_values": ["pass"],
    }
    settings = gate_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'w.db'}",
        scanners={"external": [table], "media_url_base": warden.base},
    )
    services = gate_services(settings, classifier)
    warden.app = create_app(settings, services)
    state.hits.add(SHA)
    await services.start()
    try:
        outcome = await services.gate.check(JPEG, ScanContext(source="upload"))
        record = services.decisions.get(outcome.decision_id)
    finally:
        await services.aclose()
    assert outcome.verdict.decision is Decision.REJECT
    assert record is not None and record.verdict.reasons[0].code == "scanner_reject"
    assert [status for _, status in state.fetched] == [200]
