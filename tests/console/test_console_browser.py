"""The console in real headless Chromium with JavaScript OFF (every action is a
plain form), against Lemmy 0.19 and 1.0 doubles and a pict-rs 0.5.7 double.

What an admin does on a bad night, end to end: sign in, look at Now, work the
review queue (pixelated thumbnails only; a CSAM-bank match shows no picture),
flag one upload (preview, then five things done, checked in the doubles, the
banks, the evidence store and the invite ledger), approve another, flip the
uploads switch and see the edge's /authz answer change. Screenshots of every
page go to $WARDEN_ARTEFACTS/console/<version>/ (else the test's tmp dir).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.console.world import ADMIN_PASSWORD, MOD_PASSWORD, World, staged
from warden.store.banks import BankStore
from warden.store.invites import InviteStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(params=["0.19.5", "1.0"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, astronaut: Image.Image
) -> Iterator[World]:
    yield from staged(request.param, tmp_path, astronaut, moderators=True)


def _browser(p):  # type: ignore[no-untyped-def]
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])


def _sign_in(page, world: World, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{world.url}/console")
    assert page.url.endswith("/console/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _authz_upload(world: World, token: str) -> int:
    """nginx's auth_request for an image upload, as the edge asks it."""
    path = "/pictrs/image" if world.lemmy.api == "v3" else "/api/v4/image"
    answer = httpx.get(
        f"{world.url}/authz",
        headers={
            "X-Original-Method": "POST",
            "X-Original-URI": path,
            "Authorization": f"Bearer {token}",
        },
    )
    return answer.status_code


def _blockiness(png: bytes) -> int:
    """Distinct 1-pixel-wide columns in a picture: a pixelated thumbnail has only a
    handful (its blocks), a photograph hundreds."""
    arr = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len({arr[:, x].tobytes() for x in range(arr.shape[1])})


def test_an_admin_works_the_flood_from_the_console(world: World) -> None:
    from playwright.sync_api import sync_playwright

    shots = world.artefacts
    user_token = world.lemmy.accounts["t-user"].token
    assert _authz_upload(world, user_token) == 204
    with sync_playwright() as p:
        browser = _browser(p)
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        _sign_in(page, world)
        assert page.url.endswith("/console/now") and page.text_content("#who") == "admin"
        cookie = next(c for c in context.cookies() if c["name"] == "warden_console")
        assert (
            cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
        )
        assert page.text_content("#total-review") == "4"
        assert page.locator("#chart-outcomes rect.bar-review").count() >= 1
        assert "answers with Warden's key" in (page.text_content("#findings") or "")
        page.screenshot(path=str(shots / "now.png"), full_page=True)

        # -- the queue: pixelated thumbnails only; a CSAM-bank match shows no picture
        page.goto(f"{world.url}/console/queue")
        ids = world.ids
        assert page.locator(".item").count() == 4
        assert page.locator(f"#withheld-{ids['matched']}").count() == 1
        assert page.locator(f"#item-{ids['matched']} img").count() == 0
        assert page.locator(f"#reveal-{ids['matched']}").count() == 0
        thumbs = {}
        for name in ("reviewed", "earlier", "other"):
            img = page.locator(f"#item-{ids[name]} img")
            assert img.count() == 1
            answer = context.request.get(f"{world.url}{img.get_attribute('src')}")
            assert answer.status == 200 and answer.headers["content-type"] == "image/png"
            thumbs[name] = answer.body()
            assert _blockiness(thumbs[name]) <= 16, "thumbnails are pixelated on the server"
        withheld = context.request.get(f"{world.url}/console/queue/{ids['matched']}/thumb.png")
        assert withheld.status == 404 and withheld.headers["content-type"].startswith("text/html")
        page.screenshot(path=str(shots / "queue.png"), full_page=True)

        # -- the clear picture only when asked, for one item
        with page.expect_response(f"**/queue/{ids['other']}/reveal") as revealed:
            page.click(f"#reveal-{ids['other']}")
        clear = revealed.value.body()
        assert _blockiness(clear) > 100, "the clear picture is the photograph itself"
        page.goto(f"{world.url}/console/queue")

        # -- flag: the preview first, nothing done yet
        page.click(f"#flag-{ids['reviewed']}")
        plan = page.text_content("#plan") or ""
        assert "mallory" in plan and "eve" in plan and "alice" in plan
        assert "reviewed-1.jpg" in plan or "reviewed-2.jpg" in plan
        assert "earlier-1.jpg" in plan
        assert world.lemmy.bans == [] and world.pictrs.purge_calls == {}
        page.screenshot(path=str(shots / "flag-preview.png"), full_page=True)
        page.fill("#reason", "CSAM attack wave")
        page.click("#confirm-flag")
        for step in ("bank", "evidence", "purge", "ban", "strike"):
            assert "done" in (page.text_content(f"#step-{step}") or ""), step
        page.screenshot(path=str(shots / "flag-result.png"), full_page=True)

        # -- 1. banked: the flag bank holds its SHA-256 and PDQ
        store = BankStore(world.services.database)
        sha = world.services.decisions.get(ids["reviewed"]).verdict.sha256  # type: ignore[union-attr]
        assert any(e.bank.endswith("-sha256") for e in store.lookup(sha))
        # -- 2. evidence preserved, with the decision it came from
        evidence = world.services.evidence
        assert evidence is not None
        kept = [evidence.show(i).metadata for i in evidence.ids()]
        assert any(m.get("decision_id") == ids["reviewed"] for m in kept)
        # -- 3. every copy purged: both aliases of the file and the earlier resized upload
        left = world.pictrs.aliases
        assert not {"reviewed-1.jpg", "reviewed-2.jpg", "earlier-1.jpg"} & left
        assert {"other-1.jpg", "matched-1.jpg"} <= left
        # -- 4. both uploaders banned through Lemmy, content removed
        banned = {world.lemmy.account_by_id(pid).name for pid, _ in world.lemmy.bans}
        assert banned == {"mallory", "eve"}
        field = "remove_data" if world.lemmy.api == "v3" else "remove_or_restore_data"
        assert all(form[field] is True for form in world.lemmy.ban_forms)
        # -- 5. the inviter struck
        ledger: InviteStore = world.services.console.service.invites  # type: ignore[union-attr]
        alice = ledger.find("alice")
        assert alice is not None and alice.strikes == 1

        # -- approve: into the allow bank, out of the queue
        page.goto(f"{world.url}/console/queue")
        form = page.locator(f"#item-{ids['other']} form").first
        form.locator("input[name=reason]").fill("a gradient, harmless")
        page.click(f"#approve-{ids['other']}")
        assert "approved" in (page.text_content("#notice") or "")
        assert page.locator(f"#item-{ids['other']}").count() == 0
        other_sha = world.services.decisions.get(ids["other"]).verdict.sha256  # type: ignore[union-attr]
        assert any(store.bank(e.bank).action.value == "allow" for e in store.lookup(other_sha))

        # -- the uploads switch flips the edge's answer at once
        page.goto(f"{world.url}/console/now")
        page.fill("#reason-switch", "flood in progress")
        page.click("#uploads-off")
        assert page.text_content("#uploads") == "off"
        assert _authz_upload(world, user_token) == 403
        page.screenshot(path=str(shots / "now-switched.png"), full_page=True)

        page.goto(f"{world.url}/console/people?name=mallory")
        assert page.text_content("#person") == "mallory"
        page.screenshot(path=str(shots / "people.png"), full_page=True)
        page.goto(f"{world.url}/console/evidence")
        page.screenshot(path=str(shots / "evidence.png"), full_page=True)
        browser.close()
    audits = world.services.console.store.audits(50)  # type: ignore[union-attr]
    assert {a.action for a in audits} >= {"sign_in", "reveal", "flag", "approve", "uploads"}


def test_a_moderator_sees_only_the_queue_of_their_communities(world: World) -> None:
    """No decision is placed in community 7, so the moderator's queue is empty (media
    placed nowhere is never shown to moderators), and the admin pages are refused."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_context(java_script_enabled=False).new_page()
        _sign_in(page, world, "moddy", MOD_PASSWORD)
        assert page.url.endswith("/console/queue")
        assert page.locator(".item").count() == 0 and page.locator("#empty").count() == 1
        page.screenshot(path=str(world.artefacts / "queue-moderator.png"), full_page=True)
        for where in ("now", "people", "evidence"):
            answer = page.goto(f"{world.url}/console/{where}")
            assert answer is not None and answer.status == 403
        thumb = page.request.get(f"{world.url}/console/queue/{world.ids['reviewed']}/thumb.png")
        assert thumb.status == 404
        browser.close()


def test_sign_in_refuses_accounts_that_are_not_admins(world: World) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_context(java_script_enabled=False).new_page()
        world.lemmy.accounts["t-user"].password = "user pass"
        _sign_in(page, world, "ursula", "user pass")
        assert "open to admins and moderators only" in (page.text_content("#error") or "")
        _sign_in(page, world, "admin", "wrong")
        assert "Wrong user name" in (page.text_content("#error") or "")
        page.screenshot(path=str(world.artefacts / "login-refused.png"), full_page=True)
        browser.close()
