"""The console's guard rails over plain HTTP (httpx against Warden on loopback):
CSRF and cross-site posts refused, an expired session never acts, sessions and
the uploads switch survive a restart, a failed flag step is listed and a retry
finishes it, the evidence package opens with its one-time key, and the console
is never served on the public listener."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from tests.console.world import ADMIN_PASSWORD, World, staged
from warden.services import build_services
from warden.store.console import ConsoleSessionRow
from warden.store.quarantine import decrypt_export
from warden.web.app import create_public_app


@pytest.fixture(params=["0.19.5", "1.0"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, astronaut: Image.Image
) -> Iterator[World]:
    yield from staged(request.param, tmp_path, astronaut)


def _signed_in(world: World) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=world.url, headers={"Origin": world.url})
    world.closers.append(http.close)
    answer = http.post("/console/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 303, answer.text
    page = http.get("/console/now")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return http, csrf


def _uploads(world: World) -> str:
    assert world.services.console is not None
    return world.services.console.service.uploads()[0]


def test_forms_from_elsewhere_or_without_the_token_do_nothing(world: World) -> None:
    http, csrf = _signed_in(world)
    form = {"csrf": csrf, "uploads": "off", "reason": "flood"}
    wrong = http.post("/console/switch", data={**form, "csrf": "x" * 32})
    missing = http.post("/console/switch", data={"uploads": "off", "reason": "flood"})
    evil = http.post("/console/switch", data=form, headers={"Origin": "https://evil.example"})
    no_reason = http.post("/console/switch", data={**form, "reason": "  "})
    for refused in (wrong, missing, evil):
        assert refused.status_code == 403 and 'role="alert"' in refused.text
    assert no_reason.status_code == 400 and "Give a reason" in no_reason.text
    assert _uploads(world) == "on", "no refused form changed anything"
    flagged = http.post(
        f"/console/queue/{world.ids['reviewed']}/flag", data={"csrf": "nope", "reason": "x"}
    )
    assert flagged.status_code == 403 and world.lemmy.bans == []
    good = http.post("/console/switch", data=form)
    assert good.status_code == 303 and _uploads(world) == "off"
    for answer in (wrong, evil, good):
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp and answer.headers["x-frame-options"] == "DENY"


def test_an_expired_session_is_refused_and_never_acts(world: World) -> None:
    http, csrf = _signed_in(world)
    with world.services.database.session() as s:
        s.execute(
            update(ConsoleSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    page = http.get("/console/now")
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    acted = http.post("/console/switch", data={"csrf": csrf, "uploads": "off", "reason": "x"})
    assert acted.status_code == 403 and "expired" in acted.text
    assert _uploads(world) == "on"
    thumb = http.get(f"/console/queue/{world.ids['reviewed']}/thumb.png")
    assert thumb.status_code == 303


def test_sessions_and_the_switch_survive_a_restart(world: World) -> None:
    http, csrf = _signed_in(world)
    assert (
        http.post(
            "/console/switch", data={"csrf": csrf, "uploads": "admins", "reason": "x"}
        ).status_code
        == 303
    )
    restarted = build_services(world.services.settings)  # a new process over the same database
    try:
        assert restarted.console is not None
        assert restarted.access.rules.uploads_override is None
        restarted.console.restore()  # what Services.start does first
        assert restarted.access.rules.uploads_override is not None
        assert restarted.access.rules.uploads_override.value == "admins"
        cookie = http.cookies["warden_console"]
        import asyncio

        session = asyncio.run(restarted.console.service.session(cookie))
        assert session is not None and session.name == "admin" and session.admin
    finally:
        restarted.database.dispose()


def test_a_failed_step_is_listed_and_a_retry_finishes_the_flag(world: World) -> None:
    http, csrf = _signed_in(world)
    target = f"/console/queue/{world.ids['reviewed']}/flag"
    world.lemmy.down = True  # Lemmy restarting in the middle of the flood
    first = http.post(target, data={"csrf": csrf, "reason": "attack wave"})
    assert first.status_code == 502
    assert 'id="step-ban"' in first.text and "FAILED" in first.text and 'id="retry"' in first.text
    assert "reviewed-1.jpg" not in world.pictrs.aliases, "the other steps still ran"
    item = f'id="item-{world.ids["reviewed"]}"'
    assert item in http.get("/console/queue").text, "an unfinished flag stays in the queue"
    world.lemmy.down = False
    again = http.post(target, data={"csrf": csrf, "reason": "attack wave"})
    assert again.status_code == 200 and "FAILED" not in again.text
    banned = {world.lemmy.account_by_id(pid).name for pid, _ in world.lemmy.bans}
    assert banned == {"mallory", "eve"}
    assert max(world.pictrs.purge_calls.values()) == 1, "nothing was purged twice"
    assert item not in http.get("/console/queue").text
    assert world.services.evidence is not None
    assert len(world.services.evidence.ids()) == 1, "the evidence was kept once"
    audits = [a for a in world.services.console.store.audits() if a.action == "flag"]  # type: ignore[union-attr]
    assert [a.outcome for a in audits] == ["ok", "partial"]


def test_an_evidence_package_for_a_hotline_opens_with_its_one_time_key(world: World) -> None:
    http, csrf = _signed_in(world)
    http.post(f"/console/queue/{world.ids['reviewed']}/flag", data={"csrf": csrf, "reason": "csam"})
    page = http.get("/console/evidence")
    assert world.data["reviewed"][:16] not in page.content  # metadata only, never the media
    item = page.text.split('action="/console/evidence/', 1)[1].split("/export", 1)[0]
    exported = http.post(f"/console/evidence/{item}/export", data={"csrf": csrf})
    assert exported.status_code == 200
    key = exported.text.split('id="one-time-key">', 1)[1].split("<", 1)[0]
    link = exported.text.split('id="download"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    package = http.get(link)
    assert package.status_code == 200
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        names = set(archive.namelist())
        tip = json.loads(archive.read(f"{item}/cybertipline.json"))
        folder = Path(world.services.settings.data_dir) / "unzipped"
        archive.extractall(folder)
    assert names == {f"{item}/{n}" for n in ("metadata.json", "media.bin", "cybertipline.json")}
    assert tip["reportedPerson"]["screenName"] == "mallory"
    assert tip["reportedPerson"]["ipCaptureEvent"]["ipAddress"] == "203.0.113.66"
    hashes = {h["hashType"]: h["hashValue"] for h in tip["fileDetails"]["originalFileHash"]}
    assert hashes["SHA256"] == world.services.decisions.get(world.ids["reviewed"]).verdict.sha256  # type: ignore[union-attr]
    assert tip["incidentSummary"]["incidentDateTime"]
    assert decrypt_export(folder / item, key) == world.data["reviewed"]
    elsewhere = http.get("/console/exports/..%2f..%2f/etc.zip")
    assert elsewhere.status_code == 404


def test_the_console_is_never_served_on_the_public_listener(world: World) -> None:
    app = create_public_app(world.services.settings, world.services)
    paths = {getattr(r, "path", "") for r in app.routes}
    assert not any(p.startswith("/console") for p in paths)


def test_signing_out_ends_the_session_and_odd_forms_are_clear_refusals(world: World) -> None:
    http, csrf = _signed_in(world)
    huge = http.post("/console/login", data={"username": "a" * 5000, "password": "x"})
    assert huge.status_code == 400 and 'role="alert"' in huge.text
    broken = http.post(
        "/console/switch",
        content=b"csrf=%ff%fe\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert broken.status_code in (400, 403) and 'role="alert"' in broken.text
    cookie = http.cookies["warden_console"]
    out = http.post("/console/logout", data={"csrf": csrf})
    assert out.status_code == 303
    http.cookies.set("warden_console", cookie, path="/console")  # a stolen copy of the cookie
    assert http.get("/console/now").status_code == 303, "a signed-out session is gone"


@pytest.mark.parametrize("version", ["0.19.5"])
def test_the_session_cookie_is_secure_by_default(
    version: str, tmp_path: Path, astronaut: Image.Image
) -> None:
    for world in staged(version, tmp_path, astronaut, cookie_secure=True):
        answer = httpx.post(
            f"{world.url}/console/login",
            data={"username": "admin", "password": ADMIN_PASSWORD},
            headers={"Origin": world.url},
        )
        cookie = answer.headers["set-cookie"].lower()
        assert answer.status_code == 303
        for part in ("secure", "httponly", "samesite=strict", "path=/console"):
            assert part in cookie, part


def test_media_a_csam_bank_lists_later_is_withheld_from_then_on(world: World) -> None:
    """A hotline list imported after the upload: the queue stops showing the picture
    as soon as the running Warden has the bank (what `Services.start` loads)."""
    from warden.domain.banks import BankKind
    from warden.store.banks import BankStore, NewEntry

    http, csrf = _signed_in(world)
    other = world.ids["other"]
    assert http.get(f"/console/queue/{other}/thumb.png").status_code == 200
    store = BankStore(world.services.database)
    store.create_bank("hotline", BankKind.SHA256, csam=True)
    sha = world.services.decisions.get(other).verdict.sha256  # type: ignore[union-attr]
    store.add("hotline", [NewEntry(sha, "test", "test", "listed")])
    assert world.services.banks is not None
    world.services.banks.load()
    assert http.get(f"/console/queue/{other}/thumb.png").status_code == 404
    page = http.get("/console/queue").text
    assert f'id="withheld-{other}"' in page and f"/console/queue/{other}/thumb.png" not in page
    reveal = http.post(f"/console/queue/{other}/reveal", data={"csrf": csrf})
    assert reveal.status_code == 404 and reveal.headers["content-type"].startswith("text/html")


def test_the_queue_and_people_pages_show_the_attributed_account_and_address(
    world: World,
) -> None:
    """Issue 18: what the ingest proxy recorded (account, address) reaches the admin."""
    http, _ = _signed_in(world)
    queue = http.get("/console/queue").text
    assert "203.0.113.66" in queue and "mallory" in queue
    people = http.get("/console/people", params={"name": "mallory"}).text
    decisions = people.split('<table id="decisions">', 1)[1].split("</table>", 1)[0]
    assert f"<td>#{world.ids['reviewed']}</td>" in decisions  # found by the attributed account
    assert f"<td>#{world.ids['earlier']}</td>" not in decisions  # eve's, not mallory's
