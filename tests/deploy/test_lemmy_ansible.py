"""Warden installed into lemmy-ansible's own nginx configs (issue 11, item 14).

Both paths an admin of lemmy-ansible uses: nginx on the host (the 443 server
block of templates/nginx.conf) and the `proxy` container (nginx_internal.conf
through the compose override), for the two latest lemmy-ansible releases. Real
nginx, real Warden, the Lemmy double for Warden's look-ups, and recording
upstreams standing where Lemmy (or the proxy container) would be.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.deploy.lemmy_ansible import (
    RELEASES,
    Deployment,
    host_nginx,
    proxy_container,
)
from tests.deploy.upstream import Recorder
from tests.servers.edge import edge_services, edge_settings
from tests.servers.lemmy_double import LemmyDouble
from tests.servers.nginx import FREE_POSTS, free_port
from tests.servers.uvicorn_thread import ServedApp
from warden.adapters.lemmy import routes
from warden.web.app import create_app

pytestmark = pytest.mark.nginx

RULES = """\
uploads = "on"

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]

[rules.create_post]
all = ["account_age >= 3d"]
"""
DAY = timedelta(days=1)
MAPPED = sorted(routes._POST)

READS = [
    "/api/v3/post?id=1",
    "/api/v4/post?id=1",
    "/api/v3/community?name=main",
    "/pictrs/image/a.png",
]


class AuthzLog:
    """Warden's ASGI app, noting every request that reaches /authz (and its headers)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/authz":
            self.calls.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@dataclass
class Stack:
    lemmy: LemmyDouble
    authz: AuthzLog
    warden_port: int
    upstream: Recorder  # Lemmy (proxy path) or the proxy container (host path)
    ui: Recorder
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("lemmy-ansible-warden")
    lemmy = LemmyDouble("0.19.5")
    lemmy.start()
    tokens = {
        "new": lemmy.add_user("la-new", "newbie", 2 * DAY, comments=1).token,
        "old": lemmy.add_user("la-old", "veteran", 400 * DAY, comments=50).token,
    }
    rules = workdir / "rules.toml"
    rules.write_text(RULES)
    services = edge_services(edge_settings(workdir, lemmy.url, rules))
    authz = AuthzLog(create_app(services.settings, services))
    warden = ServedApp(authz, on_stop=services.aclose)
    warden.start()
    upstream, ui = Recorder("lemmy"), Recorder("lemmy-ui")
    yield Stack(lemmy, authz, warden.port, upstream, ui, tokens)
    ui.stop()
    upstream.stop()
    warden.stop()
    lemmy.stop()


Start = Callable[[str, str, bool], Deployment]


@pytest.fixture
def deploy(stack: Stack, tmp_path: Path) -> Iterator[Start]:
    """Start one patched deployment: (path, lemmy-ansible tag, Warden up?)."""
    started: list[Deployment] = []

    def start(path: str, tag: str, warden_up: bool) -> Deployment:
        warden_port = stack.warden_port if warden_up else free_port()  # nothing listens
        workdir = tmp_path / f"{path}-{tag}-{len(started)}"
        if path == "proxy":
            deployment = proxy_container(
                workdir,
                tag,
                lemmy_port=stack.upstream.port,
                ui_port=stack.ui.port,
                warden_port=warden_port,
            )
        else:
            deployment = host_nginx(
                workdir, tag, upstream_port=stack.upstream.port, warden_port=warden_port
            )
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        deployment.stop()


def client(deployment: Deployment) -> httpx.Client:
    return httpx.Client(base_url=deployment.url, timeout=10, verify=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


PATHS = ["proxy", "host"]
TAGS = sorted(RELEASES)


@pytest.mark.parametrize("tag", TAGS)
def test_nginx_accepts_both_patched_configs(deploy: Start, tag: str) -> None:
    """`nginx -t` passes for the host site and the proxy container's config
    (Nginx.start runs it first and refuses to start otherwise)."""
    for path in PATHS:
        deployment = deploy(path, tag, True)
        assert "include " in deployment.config.read_text()
        assert deployment.nginx.process is not None


# -- running: Warden up ----------------------------------------------------------------


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("path", PATHS)
def test_mapped_posts_are_judged_and_the_rest_never_asks(
    stack: Stack, deploy: Start, path: str, tag: str
) -> None:
    deployment = deploy(path, tag, True)
    with client(deployment) as c:
        before = len(stack.upstream.seen)
        refused = c.post("/pictrs/image", content=b"x", headers=bearer(stack.tokens["new"]))
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/json")
        body = json.loads(refused.text)
        assert body["error"] == "requirement_not_met"
        assert "account must be 7 days old; yours is 2 days" in body["message"]
        assert len(stack.upstream.seen) == before  # Lemmy never saw it

        asked = len(stack.authz.calls)
        passed = c.post("/api/v3/post", content=b"{}", headers=bearer(stack.tokens["old"]))
        assert passed.status_code == 200, passed.text
        assert stack.upstream.last().target == "/api/v3/post"
        assert len(stack.authz.calls) == asked + 1
        seen_by_warden = stack.authz.calls[-1]
        assert seen_by_warden["x-original-uri"] == "/api/v3/post"
        assert seen_by_warden["x-original-method"] == "POST"

        asked = len(stack.authz.calls)
        for target in FREE_POSTS:
            headers = bearer(stack.tokens["new"]) | {"Content-Type": "application/activity+json"}
            answer = c.post(target, content=b"{}", headers=headers)
            assert answer.status_code == 200, (target, answer.text)
            assert stack.upstream.last().target == target
        for target in READS:
            assert c.get(target, headers=bearer(stack.tokens["new"])).status_code == 200, target
        assert len(stack.authz.calls) == asked  # none of them reached Warden


@pytest.mark.parametrize("path", PATHS)
def test_warden_gets_the_client_address_lemmy_gets(stack: Stack, deploy: Start, path: str) -> None:
    """X-Forwarded-For to /authz is what this nginx sends Lemmy: host nginx ignores
    the client's own header ($remote_addr, lemmy-ansible 1.5.18 templates/nginx.conf:60),
    the proxy container appends (files/proxy_params:3); X-Real-IP is nginx's peer."""
    deployment = deploy(path, "1.5.18", True)
    with client(deployment) as c:
        headers = bearer(stack.tokens["old"]) | {"X-Forwarded-For": "203.0.113.7"}
        assert c.post("/api/v3/post", content=b"{}", headers=headers).status_code == 200
    to_lemmy = stack.upstream.last().headers["x-forwarded-for"]
    to_warden = stack.authz.calls[-1]
    assert to_warden["x-forwarded-for"] == to_lemmy
    assert to_lemmy == ("127.0.0.1" if path == "host" else "203.0.113.7, 127.0.0.1")
    assert to_warden["x-real-ip"] == "127.0.0.1"


# -- running: Warden down --------------------------------------------------------------


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("path", PATHS)
def test_warden_down_fails_mapped_posts_closed_and_nothing_else(
    stack: Stack, deploy: Start, path: str, tag: str
) -> None:
    deployment = deploy(path, tag, False)
    with client(deployment) as c:
        before = len(stack.upstream.seen)
        for target in MAPPED:
            answer = c.post(target, content=b"{}", headers=bearer(stack.tokens["old"]))
            assert answer.status_code == 503, (target, answer.text)
            assert json.loads(answer.text)["error"] == "warden_unavailable"
        assert len(stack.upstream.seen) == before  # none reached Lemmy
        for target in FREE_POSTS:
            headers = bearer(stack.tokens["old"]) | {"Content-Type": "application/activity+json"}
            answer = c.post(target, content=b"{}", headers=headers)
            assert answer.status_code == 200, (target, answer.text)
            assert stack.upstream.last().target == target
        for target in READS:
            assert c.get(target).status_code == 200, target


def lemmy_would_route(target: str) -> str | None:
    """The mapped path Lemmy's router would send this raw request target to, if any.

    As the `http` crate and actix-router read it: absolute-form targets keep
    only their path; the query and fragment are not part of the path; the path
    is percent-decoded except %25, %2F and %2B (actix-router 0.5.1
    actix-router/src/url.rs:6, :17-19); routes match it exactly and
    case-sensitively, with no `//`, `.` or `..` resolution and no trailing-slash
    folding (actix-web web-v4.4.0 actix-web/src/scope.rs:615-632). A `#` is taken
    to end the path: the reading under which more spellings reach a handler."""
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"
    path = re.split(r"[?#]", target, maxsplit=1)[0]

    def decode(match: re.Match[str]) -> str:
        return (
            match.group(0)
            if match.group(0).upper() in ("%25", "%2F", "%2B")
            else unquote(match.group(0))
        )

    path = re.sub(r"%[0-9A-Fa-f]{2}", decode, path)
    return path if path in routes._POST else None


VARIANTS = [
    "/api/v3/post",
    "//api/v3/post",
    "/api/v3//post",
    "/api/v3/post/",
    "/api/v3/p%6Fst",
    "/api/v3/%70ost",
    "/api/v3/post?x=1",
    "/api/v3/post#x",
    "/api/v3/./post",
    "/api/v3/x/../post",
    "/api/v3/post/.",
    "/api/v3/post%2F",
    "/api/v3/post;x",
    "/api/v3/post%3Bx",
    "/API/v3/post",
    "/api/v3/post%20",
    "/%70ictrs/image",
    "/pictrs/image?upload=1",
    "http://lemmy.test/api/v3/post",
    "http://lemmy.test//pictrs/image",
    "/api/v4/account/%69nvite",
    "/api/v4//image",
]


def raw_post(deployment: Deployment, target: str, token: str = "") -> int:
    """POST `target` exactly as written (httpx would normalise it)."""
    parts = urlsplit(deployment.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="lemmy.test")
    with sock:
        sock.sendall(
            (
                f"POST {target} HTTP/1.1\r\nHost: lemmy.test\r\nContent-Type: application/json\r\n"
                + (f"Authorization: Bearer {token}\r\n" if token else "")
                + "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
            ).encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("warden_up", [False, True], ids=["warden-down", "warden-up"])
@pytest.mark.parametrize("path", PATHS)
def test_no_spelling_of_a_mapped_path_reaches_lemmy_unjudged(
    stack: Stack, deploy: Start, path: str, warden_up: bool
) -> None:
    """Every spelling Lemmy would route to a guarded handler is judged by Warden as
    that very activity (Warden up) or fails closed (Warden down: 503); the
    spellings that get through unjudged are ones Lemmy's router answers 404."""
    deployment = deploy(path, "1.5.18", warden_up)
    start = len(stack.upstream.seen)
    for target in VARIANTS:
        before, asked = len(stack.upstream.seen), len(stack.authz.calls)
        status = raw_post(deployment, target, stack.tokens["new"])
        reached = stack.upstream.targets()[before:]
        judged = stack.authz.calls[asked:]
        routed = lemmy_would_route(target)
        if routed is None:
            continue
        if not warden_up:
            assert status == 503 and not reached, (target, status)
            continue
        assert len(judged) == 1, (target, status)
        seen_by_warden = routes.activity_for("POST", judged[0]["x-original-uri"])
        assert seen_by_warden is routes._POST[routed], (target, judged[0]["x-original-uri"])
        if status == 403:
            assert not reached, target
    # nothing reached Lemmy's guarded handlers without being judged
    for seen in stack.upstream.seen[start:]:
        if lemmy_would_route(seen.target) is not None:
            assert warden_up, seen.target
