"""`/authz` against the Lemmy double: what Lemmy's answers make of a request (issue 11, item 2).

A flood of junk-token requests must not turn a real user anonymous: Warden
forwards each request's client address so Lemmy charges that client's own
rate-limit bucket, and a rate-limited look-up follows `rules.fail_mode`
(closed by default), never "nobody is logged in". Warden is served on
loopback and asked the way nginx's `auth_request` asks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.servers.edge import edge_services, edge_settings
from tests.servers.lemmy_double import VERSIONS, LemmyDouble, lemmy_jwt, running_double
from tests.servers.uvicorn_thread import ServedApp
from warden.web.app import create_app

RULES = '[rules.create_post]\nall = ["account_age >= 7d"]\n'
ATTACKER, USER_IP = "203.0.113.9", "198.51.100.7"


@pytest.fixture(params=VERSIONS)
def double(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


def _warden(tmp_path: Path, double: LemmyDouble, **rules: str) -> ServedApp:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    services = edge_services(edge_settings(tmp_path, double.url, rules_file, **rules))
    warden = ServedApp(create_app(services.settings, services), on_stop=services.aclose)
    warden.start()
    return warden


def _ask(client: httpx.Client, double: LemmyDouble, token: str, ip: str) -> httpx.Response:
    """What nginx sends: the original headers, the original method and URI, and the
    client address (`X-Forwarded-For` as `$proxy_add_x_forwarded_for`, `X-Real-IP`)."""
    return client.get(
        "/authz",
        headers={
            "X-Original-Method": "POST",
            "X-Original-URI": f"/api/{double.api}/post",
            "Authorization": f"Bearer {token}",
            "X-Forwarded-For": ip,
            "X-Real-IP": ip,
        },
    )


def test_a_junk_token_flood_does_not_make_a_new_account_anonymous(
    tmp_path: Path, double: LemmyDouble
) -> None:
    newbie = double.add_user("t-newbie", "newbie", timedelta(days=1))
    neighbour = double.add_user("t-neighbour", "neighbour", timedelta(days=1))
    frozen = double.rate_limit.clock()
    double.rate_limit.clock = lambda: frozen  # the whole flood within one second
    warden = _warden(tmp_path, double)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{warden.port}", timeout=10) as client:
            for i in range(double.rate_limit.capacity + 10):
                assert _ask(client, double, lemmy_jwt(f"junk-{i}"), ATTACKER).status_code == 403
            # the new account, from its own address: judged by the rules, not waved through
            answer = _ask(client, double, newbie.token, USER_IP)
            assert answer.status_code == 403
            assert answer.headers["X-Warden-Error"] == "requirement_not_met"
            assert USER_IP in double.seen_ips
            # behind the flooded address Lemmy cannot say who it is: refused, fail-closed
            flooded = _ask(client, double, neighbour.token, ATTACKER)
            assert flooded.status_code == 403
            assert flooded.headers["X-Warden-Error"] == "lemmy_unavailable"
            assert "rate-limiting" in flooded.headers["X-Warden-Message"]
    finally:
        warden.stop()


def test_a_rate_limited_look_up_follows_fail_mode_open(tmp_path: Path) -> None:
    for double in running_double("0.19.3"):
        veteran = double.add_user("t-old", "veteran", timedelta(days=90))
        double.rate_limit.capacity = 0  # Lemmy answers 400 rate_limit_error to everything
        warden = _warden(tmp_path, double, fail_mode="open")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{warden.port}", timeout=10) as client:
                answer = _ask(client, double, veteran.token, USER_IP)
            assert answer.status_code == 204
            assert answer.headers["X-Warden-Decision"] == "fail-open"
        finally:
            warden.stop()
