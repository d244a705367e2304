"""The API edge for real: nginx with the shipped snippet in front of a Lemmy double and Warden.

Both API versions: Lemmy 0.19 (v3) and Lemmy 1.0 (v4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.deploy.upstream import Recorder
from tests.servers.edge import Edge
from tests.servers.lemmy_double import lemmy_jwt
from tests.servers.nginx import FREE_POSTS, Nginx, free_port, lemmy_edge_config
from warden.adapters.lemmy import routes
from warden.domain.policy import FailMode

pytestmark = pytest.mark.nginx

RULES = """\
uploads = "on"

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]
rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }

[rules.create_community]
any = ['role in ["admin", "moderator"]', "account_age >= 30d"]

[rules.send_private_message]
all = ["account_age >= 3d"]
message = 'New accounts wait before "private" messages'

[rules.create_invite]
all = ["account_age >= 30d"]
"""

UPLOAD = {"v3": "/pictrs/image", "v4": "/api/v4/image"}
DAY = timedelta(days=1)


@pytest.fixture(scope="module", params=["v3", "v4"])
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    api = request.param
    running = Edge.start(tmp_path_factory.mktemp(f"edge-{api}"), api, RULES)
    lemmy = running.lemmy
    lemmy.add_user("t-new", "newbie", 2 * DAY, comments=1)
    lemmy.add_user("t-old", "veteran", 400 * DAY, comments=50, posts=5)
    lemmy.add_user("t-mid", "middling", 10 * DAY, comments=6)
    lemmy.add_user("t-admin", "boss", 1 * DAY, admin=True)
    lemmy.add_user("t-mod", "keeper", 3 * DAY, comments=9, moderates=[4])
    yield running
    running.stop()


@pytest.fixture
def client(edge: Edge) -> Iterator[httpx.Client]:
    edge.rules_file.write_text(RULES)
    edge.services.settings.rules.fail_mode = FailMode.CLOSED
    edge.lemmy.down = False
    with httpx.Client(base_url=edge.url, timeout=10) as c:
        yield c


def api(edge: Edge) -> str:
    return edge.lemmy.api


def post(
    client: httpx.Client, path: str, token: str | None, *, cookie: bool = False
) -> httpx.Response:
    headers = {}
    if token:  # the label's JWT: Warden never looks up a token that cannot be one
        jwt = lemmy_jwt(token)
        headers = {"Cookie": f"jwt={jwt}"} if cookie else {"Authorization": f"Bearer {jwt}"}
    return client.post(path, content=b"{}", headers=headers)


def refusal(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, str] = json.loads(response.text)
    return body


def test_new_account_upload_refused_with_lemmy_json(edge: Edge, client: httpx.Client) -> None:
    before = len(edge.lemmy.posted)
    body = refusal(post(client, UPLOAD[api(edge)], "t-new"))
    assert body["error"] == "requirement_not_met"
    assert "account must be 7 days old; yours is 2 days" in body["message"]
    assert "you need at least 5 comments; you have 1" in body["message"]
    assert len(edge.lemmy.posted) == before  # Lemmy never saw it


def test_old_account_upload_passes(edge: Edge, client: httpx.Client) -> None:
    for cookie in (False, True):
        response = post(client, UPLOAD[api(edge)], "t-old", cookie=cookie)
        assert response.status_code == 200, response.text
        assert edge.lemmy.posted[-1] == (UPLOAD[api(edge)], "veteran")


def test_anonymous_unmapped_and_reads_pass(edge: Edge, client: httpx.Client) -> None:
    assert post(client, UPLOAD[api(edge)], None).status_code == 200
    assert post(client, f"/api/{api(edge)}/post/like", "t-new").status_code == 200
    assert client.get(f"/api/{api(edge)}/site").status_code == 200


def test_uploads_switch_flips_without_restart(edge: Edge, client: httpx.Client) -> None:
    path = UPLOAD[api(edge)]
    edge.rules_file.write_text('uploads = "admins"\n')
    assert post(client, path, "t-admin").status_code == 200
    assert refusal(post(client, path, "t-old"))["error"] == "uploads_disabled"
    edge.rules_file.write_text('uploads = "moderators"\n')
    assert post(client, path, "t-mod").status_code == 200
    assert refusal(post(client, path, "t-old"))["error"] == "uploads_disabled"
    edge.rules_file.write_text('uploads = "off"\n')
    assert refusal(post(client, path, "t-admin"))["message"] == (
        "Image uploads are switched off on this instance."
    )
    edge.rules_file.write_text('uploads = "on"\n')
    edge.services.reload_rules()
    assert post(client, path, "t-old").status_code == 200


def test_community_creation_and_private_messages(edge: Edge, client: httpx.Client) -> None:
    community, pm = f"/api/{api(edge)}/community", f"/api/{api(edge)}/private_message"
    body = refusal(post(client, community, "t-mid"))
    assert "only open to admins or moderators" in body["message"]
    assert "account must be 30 days old; yours is 10 days" in body["message"]
    for token in ("t-old", "t-admin", "t-mod"):
        assert post(client, community, token).status_code == 200, token
    body = refusal(post(client, pm, "t-new"))  # the quotes survive nginx's JSON template
    assert body["message"] == (
        'New accounts wait before "private" messages (account must be 3 days old; yours is 2 days)'
    )
    assert post(client, pm, "t-mid").status_code == 200


def test_invites_on_v4(edge: Edge, client: httpx.Client) -> None:
    if api(edge) != "v4":
        pytest.skip("native invites are Lemmy 1.0's")
    assert refusal(post(client, "/api/v4/account/invite", "t-mid"))["error"] == (
        "requirement_not_met"
    )
    assert post(client, "/api/v4/account/invite", "t-old").status_code == 200


def test_rate_limit_counts_across_requests(edge: Edge, client: httpx.Client) -> None:
    path = UPLOAD[api(edge)]
    token = f"t-rate-{api(edge)}"
    edge.lemmy.add_user(token, f"rater{api(edge)}", 12 * DAY, comments=5)
    results = [post(client, path, token).status_code for _ in range(3)]
    assert results == [200, 200, 200]
    body = refusal(post(client, path, token))
    assert body["error"] == "rate_limited"
    assert "at most 3 times per 1 day" in body["message"]
    # an account past the bar is not limited
    assert all(post(client, path, "t-old").status_code == 200 for _ in range(5))


def test_lemmy_outage_fails_closed_then_open(edge: Edge, client: httpx.Client) -> None:
    path = UPLOAD[api(edge)]
    edge.lemmy.add_user(f"t-out-{api(edge)}", f"out{api(edge)}", 100 * DAY, comments=9)
    edge.lemmy.add_user(f"t-out2-{api(edge)}", f"out2{api(edge)}", 100 * DAY, comments=9)
    edge.lemmy.down = True
    body = refusal(post(client, path, f"t-out-{api(edge)}"))
    assert body["error"] == "lemmy_unavailable"
    edge.services.settings.rules.fail_mode = FailMode.OPEN
    assert post(client, path, f"t-out2-{api(edge)}").status_code == 503  # passed on to (down) Lemmy
    edge.lemmy.down = False
    assert post(client, path, f"t-out-{api(edge)}").status_code == 200


# -- Warden down, and what `warden doctor --nginx` sees ---------------------------------


@pytest.fixture
def edge_without_warden(tmp_path: Path) -> Iterator[tuple[str, Recorder]]:
    """The shipped snippets in front of a recording upstream, Warden's port dead."""
    upstream = Recorder("lemmy")
    port = free_port()
    nginx = Nginx(
        tmp_path / "nginx",
        lemmy_edge_config(
            port=port, lemmy_url=f"http://127.0.0.1:{upstream.port}", warden_port=free_port()
        ),
        [port],
    )
    nginx.start()
    yield f"http://127.0.0.1:{port}", upstream
    nginx.stop()
    upstream.stop()


def test_warden_down_refuses_guarded_posts_and_passes_the_rest(
    edge_without_warden: tuple[str, Recorder],
) -> None:
    url, upstream = edge_without_warden
    token = {"Authorization": f"Bearer {lemmy_jwt('anyone')}"}
    with httpx.Client(base_url=url, timeout=10) as c:
        for path in sorted(routes._POST):
            answer = c.post(path, content=b"{}", headers=token)
            assert answer.status_code == 503, (path, answer.text)
            assert json.loads(answer.text)["error"] == "warden_unavailable"
        assert upstream.seen == []  # fail closed: Lemmy never saw them
        for path in FREE_POSTS:
            headers = token | {"Content-Type": "application/activity+json"}
            assert c.post(path, content=b"{}", headers=headers).status_code == 200, path
            assert upstream.last().target == path
        assert c.get("/api/v3/post?id=1").status_code == 200


def test_doctor_probe_names_warden_down_and_the_every_post_snippet(
    edge: Edge, edge_without_warden: tuple[str, Recorder], tmp_path: Path
) -> None:
    from warden.jobs.doctor import probe_nginx

    assert probe_nginx(edge.url).status == "ok"
    down = probe_nginx(edge_without_warden[0])
    assert down.status == "problem" and "does not answer" in down.detail
    # the snippet as it was: every POST asks Warden
    port = free_port()
    every_post = Nginx(
        tmp_path / "every-post",
        f"""server {{
    listen 127.0.0.1:{port};
    auth_request /_w;
    location = /_w {{
        internal;
        if ($request_method != POST) {{ return 204; }}
        proxy_pass http://127.0.0.1:{edge.warden.port}/authz;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Original-URI $request_uri;
    }}
    error_page 403 = @refused;
    location @refused {{ auth_request off; return 403 '{{"error":"warden_probe"}}'; }}
    location / {{ proxy_pass {edge.lemmy.url}; }}
  }}""",
        [port],
    )
    every_post.start()
    try:
        finding = probe_nginx(f"http://127.0.0.1:{port}")
    finally:
        every_post.stop()
    assert finding.status == "problem" and "every POST" in finding.detail
