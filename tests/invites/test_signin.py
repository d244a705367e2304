"""Sign-in on /invites as an attacker meets it: the client's address goes to Lemmy,
failures are throttled per account and per address, cross-site posts and odd form
values are clear refusals, and the page is neither frameable nor leaks Lemmy's
internal address. Page behaviour in real headless Chromium, the rest over httpx."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.servers.lemmy_double import LemmyDouble, running_double
from tests.servers.uvicorn_thread import ServedApp
from warden.config import load_settings
from warden.services import Services, build_services
from warden.services.throttle import LoginThrottle
from warden.web.app import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BASE = "http://warden.test"
PROXY = ("127.0.0.1", 40000)  # the reverse proxy in front of Warden (trusted below)


@pytest.fixture(params=["v3", "v4"])
def lemmy(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


def _services(lemmy: LemmyDouble, tmp_path: Any, **invites: Any) -> Services:
    lemmy.add_user("t-alice", "alice", timedelta(days=400), comments=50, password="s3cret pass")
    lemmy.add_user("t-bob", "bob", timedelta(days=400), comments=50, password="bob pass")
    settings = load_settings(
        None,
        data_dir=tmp_path,
        lemmy={"url": lemmy.url, "api": lemmy.api, "identity_ttl_s": 0},
        invites={"enabled": True, "cookie_secure": False, **invites},
        server={"trusted_proxies": ["127.0.0.1/32"]},
    )
    built = build_services(settings)
    assert built.database is not None
    built.database.upgrade()
    return built


@asynccontextmanager
async def client(services: Services, peer: tuple[str, int] = PROXY) -> AsyncIterator[Any]:
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app, client=peer)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, headers={"Origin": BASE}
        ) as http:
            yield http
    finally:
        await services.aclose()


def _login(user: str, password: str) -> dict[str, str]:
    return {"username": user, "password": password}


async def test_lemmy_sees_each_clients_address_so_one_guesser_locks_out_nobody(lemmy, tmp_path):
    """Lemmy allows 3 logins an hour per address. Before, every sign-in came from
    Warden's address: three bad tries by anyone locked every user out."""
    services = _services(lemmy, tmp_path)
    async with client(services) as http:
        for _ in range(3):
            bad = await http.post(
                "/invites/login",
                data=_login("alice", "guess"),
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
            assert bad.status_code == 401 and "Wrong user name or password." in bad.text
        good = await http.post(
            "/invites/login",
            data=_login("bob", "bob pass"),
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        limited = await http.post(
            "/invites/login",
            data=_login("alice", "s3cret pass"),
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    assert good.status_code == 303, good.text
    assert lemmy.login_ips[:4] == ["203.0.113.9"] * 3 + ["198.51.100.7"]
    # the guesser's own address is what Lemmy limits, and the page says so (no 503)
    assert limited.status_code == 429 and "limiting sign-ins from your address" in limited.text


async def test_an_address_not_from_a_trusted_proxy_is_not_believed(lemmy, tmp_path):
    services = _services(lemmy, tmp_path)
    async with client(services, peer=("192.0.2.50", 5555)) as http:
        await http.post(
            "/invites/login",
            data=_login("alice", "guess"),
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
    assert lemmy.login_ips == ["192.0.2.50"]


async def test_failures_are_throttled_per_account_before_lemmy_is_asked(lemmy, tmp_path):
    services = _services(lemmy, tmp_path, login_failures_per_account=5)
    async with client(services) as http:
        answers = [
            await http.post(
                "/invites/login",
                data=_login("Alice", "guess"),  # Lemmy finds names case-insensitively
                headers={"X-Forwarded-For": f"203.0.113.{i}"},  # a guesser with many addresses
            )
            for i in range(30)
        ]
        right_password = await http.post(
            "/invites/login",
            data=_login("alice", "s3cret pass"),
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        other_account = await http.post(
            "/invites/login",
            data=_login("bob", "bob pass"),
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 25
    assert "Too many failed sign-ins for this account" in answers[5].text
    assert int(answers[5].headers["Retry-After"]) > 0
    assert len(lemmy.login_ips) == 5 + 1, "the 25 throttled guesses never reached Lemmy"
    assert right_password.status_code == 429  # locked for the window, even with the password
    assert other_account.status_code == 303


async def test_failures_are_throttled_per_address(lemmy, tmp_path):
    services = _services(lemmy, tmp_path, login_failures_per_address=3)
    async with client(services) as http:
        answers = [
            await http.post(
                "/invites/login",
                data=_login(f"user{i}", "guess"),  # spraying accounts from one address
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
            for i in range(6)
        ]
        elsewhere = await http.post(
            "/invites/login",
            data=_login("alice", "s3cret pass"),
            headers={"X-Forwarded-For": "198.51.100.2"},
        )
    assert [a.status_code for a in answers] == [401] * 3 + [429] * 3
    assert "for your address" in answers[3].text
    assert lemmy.login_ips == ["203.0.113.9"] * 3 + ["198.51.100.2"]
    assert elsewhere.status_code == 303


def test_the_throttle_stays_bounded_and_forgets_after_the_window():
    now = [0.0]
    throttle = LoginThrottle(2, 100, 60.0, max_keys=50, clock=lambda: now[0])
    for i in range(1000):
        throttle.failed(f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(throttle.accounts) <= 50 and len(throttle.addresses) <= 50
    throttle.failed("alice", "10.9.9.9")
    throttle.failed("alice", "10.9.9.9")
    refusal = throttle.check("ALICE ", "10.1.1.1")
    assert refusal is not None and refusal.by == "account" and 0 < refusal.retry_after_s <= 60
    now[0] = 61.0
    assert throttle.check("alice", "10.1.1.1") is None


async def test_cross_site_form_posts_are_refused(lemmy, tmp_path):
    """Login CSRF: another site must not sign a browser in (or out, or spend invites)."""
    services = _services(lemmy, tmp_path)
    async with client(services) as http:
        evil = await http.post(
            "/invites/login",
            data=_login("alice", "s3cret pass"),
            headers={"Origin": "https://evil.example"},
        )
        null = await http.post(
            "/invites/login", data=_login("alice", "s3cret pass"), headers={"Origin": "null"}
        )
        malformed = await http.post(
            "/invites/login", data=_login("alice", "s3cret pass"), headers={"Origin": "http://["}
        )
        http.headers.pop("Origin")
        bare = await http.post("/invites/login", data=_login("alice", "s3cret pass"))
        by_referer = await http.post(
            "/invites/login",
            data=_login("alice", "s3cret pass"),
            headers={"Referer": f"{BASE}/invites"},
        )
        assert by_referer.status_code == 303
        page = await http.get("/invites")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        forged_create = await http.post(
            "/invites/create", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
        )
        port_differs = await http.post(
            "/invites/create", data={"csrf": csrf}, headers={"Origin": "http://warden.test:8080"}
        )
        own = await http.post("/invites/create", data={"csrf": csrf}, headers={"Origin": BASE})
    for refused in (evil, null, malformed, bare, forged_create, port_differs):
        assert refused.status_code == 403, refused.text
        assert "cross-site posts are refused" in refused.text
    assert lemmy.login_ips == [lemmy.login_ips[0]], "refused sign-ins never reach Lemmy"
    assert own.status_code == 303 and "Invite+created" in own.headers["location"].replace(
        "%20", "+"
    )


async def test_odd_form_values_are_clear_refusals_never_500(lemmy, tmp_path):
    services = _services(lemmy, tmp_path)
    async with client(services) as http:
        await http.post("/invites/login", data=_login("alice", "s3cret pass"))
        answers = {
            "non-ascii csrf": await http.post("/invites/create", data={"csrf": "é" * 22}),
            "missing csrf": await http.post("/invites/create", data={}),
            "undecodable body": await http.post(
                "/invites/create",
                content=b"csrf=%ff%fe\xff",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "broken multipart": await http.post(
                "/invites/revoke",
                content=b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nbroken',
                headers={"Content-Type": "multipart/form-data; boundary=x"},
            ),
            "huge username": await http.post("/invites/login", data=_login("a" * 5000, "pw")),
            "empty login": await http.post("/invites/login", data={}),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "non-ascii csrf": 403,
        "missing csrf": 403,
        "undecodable body": 403,
        "broken multipart": 403,
        "huge username": 400,
        "empty login": 400,
    }
    for answer in answers.values():
        assert answer.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in answer.text


async def test_every_answer_forbids_framing_and_names_no_internal_address(lemmy, tmp_path):
    services = _services(lemmy, tmp_path)
    async with client(services) as http:
        anonymous = await http.get("/invites")
        refused = await http.post("/invites/create", data={"csrf": "x"})
        signed = await http.post("/invites/login", data=_login("alice", "s3cret pass"))
        page = await http.get("/invites")
        await http.post(
            "/invites/create",
            data={"csrf": page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]},
        )
        with_code = await http.get("/invites")
        lemmy.down = True
        lemmy_down = await http.get("/invites")
    for answer in (anonymous, refused, signed, page, with_code, lemmy_down):
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "form-action 'self'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert lemmy.url not in answer.text and "127.0.0.1" not in answer.text
    assert lemmy_down.status_code == 503 and "cannot be checked" in lemmy_down.text
    nonce = anonymous.headers["content-security-policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<style nonce="{nonce}">' in anonymous.text


async def test_the_public_site_address_is_shown_when_configured(lemmy, tmp_path):
    services = _services(lemmy, tmp_path, site_url="https://lemmy.example/")
    async with client(services) as http:
        await http.post("/invites/login", data=_login("alice", "s3cret pass"))
        page = await http.get("/invites")
    assert "https://lemmy.example" in page.text and lemmy.url not in page.text


def test_other_sites_can_neither_frame_the_page_nor_post_its_forms_in_chromium(tmp_path):
    """A real browser: the attacker's page at another origin embeds /invites and
    submits a hidden sign-in form to it (login CSRF)."""
    from playwright.sync_api import sync_playwright

    double = LemmyDouble("v3")
    double.start()
    services = _services(double, tmp_path)
    served = ServedApp(create_app(services.settings, services), on_stop=services.aclose)
    served.start()
    target = f"http://127.0.0.1:{served.port}/invites"
    attacker = (
        f'<html><body><iframe id="f" src="{target}"></iframe>'
        f'<form method="post" action="{target}/login">'
        '<input type="hidden" name="username" value="mallory">'
        '<input type="hidden" name="password" value="mallory pass">'
        '<button id="go" type="submit">win a prize</button></form></body></html>'
    )
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(java_script_enabled=False)
            page.route(
                "http://evil.test/**",
                lambda route: route.fulfill(status=200, content_type="text/html", body=attacker),
            )
            page.goto("http://evil.test/")
            page.wait_for_timeout(500)
            framed = [f for f in page.frames if f is not page.main_frame]
            assert framed and framed[0].query_selector("#username") is None, "framed"
            with page.expect_response(f"{target}/login") as posted:
                page.click("#go")
            answer = posted.value
            assert answer.status == 403
            assert "cross-site posts are refused" in page.content()
            # the same form on Warden's own page works (Chromium sends its Origin)
            own = browser.new_page(java_script_enabled=False)
            own.goto(target)
            own.fill("#username", "alice")
            own.fill("#password", "s3cret pass")
            own.click("button[type=submit]")
            assert own.text_content("#who") == "alice"
            # the page's own style block runs under the CSP (by nonce): 46rem = 736px
            assert own.eval_on_selector("body", "b => getComputedStyle(b).maxWidth") == "736px"
            browser.close()
    finally:
        served.stop()
        double.stop()
    assert double.login_ips == ["127.0.0.1"], "only Warden's own form reached Lemmy"


async def test_nobody_elses_link_can_put_words_on_the_page(lemmy, tmp_path):
    services = _services(lemmy, tmp_path)
    async with client(services) as http:
        spoofed = await http.get(
            "/invites", params={"error": "Your account is suspended; write to evil@example"}
        )
        forged = await http.get("/invites", params={"notice": "Hello", "sig": "0" * 32})
        signed_in = await http.post("/invites/login", data=_login("alice", "s3cret pass"))
        page = await http.get("/invites")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        created = await http.post("/invites/create", data={"csrf": csrf}, follow_redirects=True)
    assert signed_in.status_code == 303
    assert "suspended" not in spoofed.text and 'role="alert"' not in spoofed.text
    assert "Hello" not in forged.text
    assert 'id="notice">Invite created.<' in created.text  # Warden's own message still shows
