"""The Lemmy client against the double: both API versions, detection, identity cache, routes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.servers.lemmy_double import LemmyDouble, running_double
from warden.adapters.lemmy import Identity, build_lemmy
from warden.adapters.lemmy.identity import token_key
from warden.adapters.lemmy.routes import activity_for, normalise_path
from warden.errors import LemmyError, LemmyUnavailable
from warden.membership.requirements import Activity


@pytest.fixture(params=["v3", "v4"])
def double(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


async def test_detects_version_and_reads_my_user(double: LemmyDouble) -> None:
    account = double.add_user("tok", "alice", timedelta(days=3), comments=4, posts=2, moderates=[7])
    lemmy = build_lemmy(double.url, "auto")
    try:
        facts = await lemmy.my_user("tok")
        assert lemmy.version == double.api
        assert facts is not None
        assert (facts.person_id, facts.name, facts.comments, facts.posts) == (
            account.id,
            "alice",
            4,
            2,
        )
        assert facts.moderates == (7,) and not facts.admin and not facts.banned
        assert abs((facts.published - account.published).total_seconds()) < 1e-3
        assert await lemmy.my_user("wrong") is None
        by_name = await lemmy.person("alice")
        assert by_name.comments == 4 and by_name.moderates == (7,)
        with pytest.raises(LemmyError, match="no person 'bob'"):
            await lemmy.person("bob")
    finally:
        await lemmy.http.aclose()


async def test_wrong_version_configured_is_an_error_not_a_pass(double: LemmyDouble) -> None:
    double.add_user("tok", "alice", timedelta(days=3))
    other = "v4" if double.api == "v3" else "v3"
    lemmy = build_lemmy(double.url, other)
    try:
        with pytest.raises(LemmyError):
            await lemmy.my_user("tok")
    finally:
        await lemmy.http.aclose()


async def test_outage_and_unreachable_raise_unavailable(double: LemmyDouble) -> None:
    lemmy = build_lemmy(double.url, double.api)
    dead = build_lemmy("http://127.0.0.1:9", "auto", timeout_s=0.5)
    try:
        double.down = True
        with pytest.raises(LemmyUnavailable):
            await lemmy.my_user("tok")
        with pytest.raises(LemmyUnavailable):
            await dead.my_user("tok")
    finally:
        await lemmy.http.aclose()
        await dead.http.aclose()


async def test_identity_cache_keys_by_hash_and_expires(double: LemmyDouble) -> None:
    double.add_user("secret-token", "alice", timedelta(days=3))
    now = [0.0]
    identity = Identity(build_lemmy(double.url, double.api), ttl_s=30, clock=lambda: now[0])
    try:
        for _ in range(3):
            assert (await identity.facts("secret-token")) is not None
        assert double.identity_calls == 1
        assert all("secret-token" not in key for key in identity._cache)
        assert token_key("secret-token") in identity._cache
        now[0] = 31
        await identity.facts("secret-token")
        assert double.identity_calls == 2
        assert await identity.facts("bad") is None and await identity.facts("bad") is None
        assert double.identity_calls == 3  # refused tokens are cached too
    finally:
        await identity.lemmy.http.aclose()


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
