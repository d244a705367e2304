"""The /invites page: in real headless Chromium (Debian's, driven by Playwright) and over HTTP."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest

from tests.servers.lemmy_double import lemmy_jwt, running_double
from tests.servers.uvicorn_thread import ServedApp
from warden.config import load_settings
from warden.services import build_services
from warden.web.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(params=["v3", "v4"])
def lemmy(request):
    yield from running_double(request.param)


@pytest.fixture
def services(lemmy, tmp_path):
    lemmy.add_user("t-alice", "alice", timedelta(days=400), comments=50, password="s3cret pass")
    lemmy.add_user("t-newbie", "newbie", timedelta(days=2), password="newbie pass")
    settings = load_settings(
        None,
        data_dir=tmp_path,
        lemmy={"url": lemmy.url, "api": lemmy.api},
        invites={"enabled": True, "cookie_secure": False},
    )
    built = build_services(settings)
    assert built.database is not None
    built.database.upgrade()
    yield built


def test_sign_in_create_see_and_revoke_in_chromium(services, lemmy):
    from playwright.sync_api import sync_playwright

    served = ServedApp(create_app(services.settings, services), on_stop=services.aclose)
    served.start()
    base = f"http://127.0.0.1:{served.port}/invites"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(java_script_enabled=False)  # the page must work without it
            page.goto(base)
            page.fill("#username", "alice")
            page.fill("#password", "s3cret pass")
            page.click("button[type=submit]")
            assert page.text_content("#who") == "alice"
            assert page.text_content("#balance") == "3"
            page.click("#create")
            assert page.text_content("#notice") == "Invite created."
            assert page.text_content("#balance") == "2"
            rows = page.locator("#codes tbody tr")
            assert rows.count() == 1
            code = rows.first.get_attribute("data-code")
            assert code and rows.first.locator(".state").text_content() == "active"
            if lemmy.api == "v4":  # the code is Lemmy 1.0's own invite link
                assert code in lemmy.invites
            else:
                assert len(code) == 22
            rows.first.locator("button").click()
            assert "1 returned to your balance" in (page.text_content("#notice") or "")
            assert page.text_content("#balance") == "3"
            assert page.locator("#codes tbody tr .state").first.text_content() == "revoked"
            if lemmy.api == "v4":
                assert code not in lemmy.invites
            browser.close()
    finally:
        served.stop()
    assert "s3cret pass" not in str(services.invites.sessions.__dict__)  # only the session


@contextmanager
def http(built):
    """The app served on loopback, and a client with a cookie jar."""
    served = ServedApp(create_app(built.settings, built), on_stop=built.aclose)
    served.start()
    try:
        base = f"http://127.0.0.1:{served.port}"
        with httpx.Client(base_url=base, headers={"Origin": base}) as client:
            yield client
    finally:
        served.stop()


def test_wrong_password_csrf_and_ineligible_users(services):
    with http(services) as client:
        bad = client.post("/invites/login", data={"username": "alice", "password": "nope"})
        assert bad.status_code == 401 and "Wrong user name or password." in bad.text
        good = client.post(
            "/invites/login",
            data={"username": "newbie", "password": "newbie pass"},
            follow_redirects=False,
        )
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/invites" in cookie
        page = client.get("/invites")
        assert "account must be 30 days old; yours is 2 days" in page.text
        forged = client.post("/invites/create", data={"csrf": "forged"})
        assert forged.status_code == 403
        missing = client.post("/invites/create", data={})
        assert missing.status_code == 403 and "The form expired" in missing.text


def test_page_is_absent_when_invites_are_off(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)
    with http(build_services(settings)) as client:
        assert client.get("/invites").status_code == 404


def test_authz_meters_native_invites_against_the_balance(services, lemmy):
    if lemmy.api != "v4":
        pytest.skip("Lemmy 1.0's invite endpoint")
    headers = {
        "X-Original-Method": "POST",
        "X-Original-URI": "/api/v4/account/invite",
        "Authorization": f"Bearer {lemmy_jwt('t-alice')}",
    }
    with http(services) as client:
        answers = [client.get("/authz", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [204, 204, 204, 403]
    assert answers[3].headers["X-Warden-Error"] == "no_invites_left"
    assert "no invites left" in answers[3].headers["X-Warden-Message"]
