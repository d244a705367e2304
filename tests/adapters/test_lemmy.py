"""The Lemmy client against the double of Lemmy 0.19.3, 0.19.5 and 1.0.

Detection (0.19's empty-body 404 for `/api/v4/*`, 1.0's v3 layer that reports
no admins and no moderators, re-detection after an upgrade or downgrade), what
counts as "not logged in" and what is an upstream failure (the rate limit
above all), the forwarded client address, the identity cache, and routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.servers.lemmy_double import VERSIONS, LemmyDouble, lemmy_jwt, running_double
from warden.adapters.lemmy import Identity, build_lemmy
from warden.adapters.lemmy.forwarding import client_address
from warden.adapters.lemmy.identity import could_be_jwt, token_key
from warden.adapters.lemmy.routes import activity_for, normalise_path
from warden.errors import LemmyError, LemmyRateLimited, LemmyUnavailable
from warden.membership.requirements import Activity


@pytest.fixture(params=VERSIONS)
def double(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


async def test_detects_version_and_reads_my_user(double: LemmyDouble) -> None:
    double.add_community(7, timedelta(days=45))
    account = double.add_user("tok", "alice", timedelta(days=3), comments=4, posts=2, moderates=[7])
    lemmy = build_lemmy(double.url, "auto")
    try:
        facts = await lemmy.my_user(account.token)
        assert lemmy.version == double.api
        assert facts is not None
        assert (facts.person_id, facts.name, facts.comments, facts.posts) == (
            account.id,
            "alice",
            4,
            2,
        )
        assert [c.id for c in facts.moderates] == [7] and not facts.admin and not facts.banned
        published = facts.moderates[0].published
        assert published is not None
        assert abs((datetime.now(UTC) - published) - timedelta(days=45)) < timedelta(minutes=1)
        assert abs((facts.published - account.published).total_seconds()) < 1e-3
        assert await lemmy.my_user(lemmy_jwt("wrong")) is None
        by_name = await lemmy.person("alice", account.token)
        assert by_name.comments == 4 and [c.id for c in by_name.moderates] == [7]
        with pytest.raises(LemmyError, match="no person 'bob'"):
            await lemmy.person("bob", account.token)
    finally:
        await lemmy.http.aclose()


async def test_wrong_version_configured_is_an_error_not_a_pass(double: LemmyDouble) -> None:
    account = double.add_user("tok", "alice", timedelta(days=3), admin=True)
    other = "v4" if double.api == "v3" else "v3"
    lemmy = build_lemmy(double.url, other)
    try:
        # 0.19 has no /api/v4/account (404, empty body); 1.0's /api/v3/site would
        # report this admin as a plain user, so it is refused, never believed
        with pytest.raises(LemmyError):
            await lemmy.my_user(account.token)
    finally:
        await lemmy.http.aclose()


async def test_outage_and_unreachable_raise_unavailable(double: LemmyDouble) -> None:
    lemmy = build_lemmy(double.url, double.api)
    dead = build_lemmy("http://127.0.0.1:9", "auto", timeout_s=0.5)
    try:
        double.down = True
        with pytest.raises(LemmyUnavailable):
            await lemmy.my_user(lemmy_jwt("tok"))
        with pytest.raises(LemmyUnavailable):
            await dead.my_user(lemmy_jwt("tok"))
    finally:
        await lemmy.http.aclose()
        await dead.http.aclose()


async def test_identity_cache_keys_by_hash_and_expires(double: LemmyDouble) -> None:
    token = double.add_user("secret-token", "alice", timedelta(days=3)).token
    now = [0.0]
    identity = Identity(build_lemmy(double.url, double.api), ttl_s=30, clock=lambda: now[0])
    try:
        for _ in range(3):
            assert (await identity.facts(token)) is not None
        assert double.identity_calls == 1
        assert all(token not in key for key in identity._cache)
        assert token_key(token) in identity._cache
        now[0] = 31
        await identity.facts(token)
        assert double.identity_calls == 2
        bad = lemmy_jwt("bad")
        assert await identity.facts(bad) is None and await identity.facts(bad) is None
        assert double.identity_calls == 3  # definite refusals are cached too
        # what cannot be a JWT is never sent to Lemmy
        for junk in ("bad", "a.b", "x.y.z", "e30.e30.e30=", "ey J.e30.e30"):
            assert await identity.facts(junk) is None
        assert double.identity_calls == 3
    finally:
        await identity.lemmy.http.aclose()


# -- item 3: detection from Lemmy's real answers ------------------------------------------


@pytest.mark.parametrize("version", ["0.19.3", "0.19.5"])
async def test_0_19_answers_api_v4_with_an_empty_404_and_is_detected(version: str) -> None:
    for double in running_double(version):
        account = double.add_user("tok", "alice", timedelta(days=3))
        async with httpx.AsyncClient(base_url=double.url) as raw:
            probe = await raw.get("/api/v4/site")
        assert (probe.status_code, probe.content) == (404, b"")
        lemmy = build_lemmy(double.url, "auto")
        try:
            facts = await lemmy.my_user(account.token)
            assert facts is not None and facts.name == "alice" and lemmy.version == "v3"
        finally:
            await lemmy.http.aclose()


async def test_1_0_is_always_asked_through_v4_though_it_serves_v3() -> None:
    for double in running_double("1.0"):
        double.add_community(3, timedelta(days=90))
        boss = double.add_user("t-boss", "boss", timedelta(days=300), admin=True, moderates=[3])
        async with httpx.AsyncClient(base_url=double.url) as raw:
            v3 = (
                await raw.get("/api/v3/site", headers={"Authorization": f"Bearer {boss.token}"})
            ).json()
        # what the v3 layer says: a plain user who moderates nothing
        assert v3["my_user"]["local_user_view"]["local_user"]["admin"] is False
        assert v3["my_user"]["moderates"] == []
        lemmy = build_lemmy(double.url, "auto")
        try:
            facts = await lemmy.my_user(boss.token)
            assert lemmy.version == "v4"
            assert facts is not None and facts.admin and [c.id for c in facts.moderates] == [3]
        finally:
            await lemmy.http.aclose()


@pytest.mark.parametrize(
    ("before", "after"), [("0.19.3", "1.0"), ("0.19.5", "1.0"), ("1.0", "0.19.5")]
)
async def test_an_in_place_upgrade_or_downgrade_is_detected_again(before: str, after: str) -> None:
    for double in running_double(before):
        double.add_community(3, timedelta(days=90))
        boss = double.add_user("t-boss", "boss", timedelta(days=300), admin=True, moderates=[3])
        lemmy = build_lemmy(double.url, "auto")
        try:
            first = await lemmy.my_user(boss.token)
            assert first is not None and first.admin
            double.upgrade(after)
            again = await lemmy.my_user(boss.token)
            assert lemmy.version == double.api
            assert again is not None and again.admin and [c.id for c in again.moderates] == [3]
            assert (await lemmy.person("boss", boss.token)).admin
        finally:
            await lemmy.http.aclose()


# -- item 2: only a definite "not logged in" is anonymous ---------------------------------


async def test_the_rate_limit_is_a_failure_never_an_anonymous_user(double: LemmyDouble) -> None:
    """A flood of junk JWTs empties one address's bucket (180 a minute by default):
    Lemmy 0.19 then answers 400 `rate_limit_error`, 1.0 answers 429. The user
    behind that address is "cannot tell", never "nobody"; other addresses are
    charged to their own bucket because the look-up forwards the address."""
    user = double.add_user("t-user", "user", timedelta(days=1))
    attacker, victim = "203.0.113.9", "198.51.100.7"
    identity = Identity(build_lemmy(double.url, "auto"), ttl_s=30)
    frozen = double.rate_limit.clock()
    double.rate_limit.clock = lambda: frozen  # the flood lands within one second
    try:
        limited = 0
        for i in range(double.rate_limit.capacity + 5):
            try:
                assert await identity.facts(lemmy_jwt(f"junk-{i}"), client_ip=attacker) is None
            except LemmyRateLimited:
                limited += 1
        assert limited >= 5
        async with httpx.AsyncClient(base_url=double.url) as raw:
            site = "/api/v3/site" if double.api == "v3" else "/api/v4/site"
            answer = await raw.get(site, headers={"X-Forwarded-For": attacker})
        if double.api == "v3":
            assert (answer.status_code, answer.json()) == (400, {"error": "rate_limit_error"})
        else:
            assert answer.status_code == 429 and answer.json()["error"] == "too_many_requests"
        with pytest.raises(LemmyRateLimited):
            await identity.facts(user.token, client_ip=attacker)
        assert token_key(user.token) not in identity._cache  # a failure is never cached
        facts = await identity.facts(user.token, client_ip=victim)
        assert facts is not None and facts.name == "user"
        assert double.seen_ips[-1] == victim
    finally:
        await identity.lemmy.http.aclose()


async def test_unexpected_answers_are_failures_not_anonymous(double: LemmyDouble) -> None:
    """Anything but 0.19's 200-without-my_user or 1.0's 401 incorrect_login is a failure."""
    lemmy = build_lemmy(double.url, double.api)
    path = "/api/v3/site" if double.api == "v3" else "/api/v4/account"
    answers = [
        httpx.Response(400, json={"error": "unknown", "message": "db"}),
        httpx.Response(401, json={"error": "something_else"}),
        httpx.Response(403, text=""),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(404, text=""),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == path
        return answers.pop(0)

    lemmy.http = httpx.AsyncClient(base_url="http://lemmy", transport=httpx.MockTransport(handler))
    try:
        while answers:
            with pytest.raises((LemmyUnavailable, LemmyError)):
                await lemmy.my_user(lemmy_jwt("someone"))
    finally:
        await lemmy.http.aclose()


@pytest.mark.parametrize(
    ("forwarded", "xff", "real_ip", "expected"),
    [
        ([], "198.51.100.7, 10.0.0.1", "10.0.0.1", "198.51.100.7"),
        (['for="[2001:db8::1]:4711"; proto=https'], "198.51.100.7", None, "2001:db8::1"),
        (["proto=https, For=192.0.2.60"], None, None, "192.0.2.60"),
        ([], "192.0.2.1:1234", None, "192.0.2.1"),
        ([], None, "203.0.113.5", "203.0.113.5"),
        ([], "not-an-ip", "203.0.113.5", None),
        ([], None, None, None),
    ],
)
def test_client_address_is_read_like_actix(
    forwarded: list[str], xff: str | None, real_ip: str | None, expected: str | None
) -> None:
    assert client_address(forwarded, xff, real_ip) == expected


def test_could_be_jwt() -> None:
    assert could_be_jwt(lemmy_jwt("anyone"))
    for junk in ("", "token", "a.b.c", "e30.e30", "e30.e30.e30.e30", "e30.e30.e3=", "x" * 5000):
        assert not could_be_jwt(junk), junk


@pytest.mark.parametrize(
    ("method", "uri", "activity"),
    [
        ("POST", "/pictrs/image", Activity.UPLOAD_IMAGE),
        ("POST", "/pictrs/image?x=1", Activity.UPLOAD_IMAGE),
        ("POST", "//pictrs/./image/", Activity.UPLOAD_IMAGE),
        ("POST", "/api/v3/%63ommunity", Activity.CREATE_COMMUNITY),
        ("POST", "/api/v3/x/../private_message", Activity.SEND_PRIVATE_MESSAGE),
        ("POST", "/api/v4/account/avatar", Activity.UPLOAD_IMAGE),
        ("POST", "/api/v4/account/invite", Activity.CREATE_INVITE),
        ("POST", "/api/v4/comment", Activity.CREATE_COMMENT),
        ("GET", "/api/v3/post", None),
        ("PUT", "/api/v3/post", None),
        ("POST", "/api/v3/post/like", None),
        ("POST", "/api/v3/user/login", None),
    ],
)
def test_route_map(method: str, uri: str, activity: Activity | None) -> None:
    assert activity_for(method, uri) is activity


def test_normalise_path() -> None:
    assert normalise_path("") == "/"
    assert normalise_path("/../../etc") == "/etc"
