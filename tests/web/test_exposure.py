"""Closed by default (issue 12, finding 6): beyond loopback `warden serve` starts only
with the hook and the proxy protected; X-Forwarded-For counts only from trusted
proxies; the hook's secret travels in a header and never reaches the access log;
the public pages have a listener of their own."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from typer.testing import CliRunner

from tests.conftest import encode, gradient
from tests.servers.nginx import free_port
from tests.servers.warden_serve import served_warden
from warden.cli import app as cli
from warden.config import load_settings
from warden.services.exposure import exposure_problems, trust_problems
from warden.web.app import create_public_app
from warden.web.exposure import redact
from warden.web.peers import client_address, forwarded_client, networks

SECRET = "hook-secret-8c1f2e"
JPEG = encode(gradient(64, 48), "JPEG")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "warden.internal"])
def test_serve_refuses_to_listen_beyond_loopback_with_the_hook_open(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["serve", "--host", host])
    assert result.exit_code == 2
    assert "server.pictrs_secret" in result.output
    assert "server.pictrs_allow_from" in result.output
    assert not (tmp_path / "warden.db").exists()  # refused before anything was built


def test_protected_hook_and_proxy_may_listen_beyond_loopback() -> None:
    with_secret = load_settings(None, server={"pictrs_secret": SECRET})
    with_list = load_settings(None, server={"pictrs_allow_from": ["10.0.5.0/24"]})
    assert exposure_problems(with_secret, "0.0.0.0") == []
    assert exposure_problems(with_list, "::") == []
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_problems(load_settings(None), host) == []


def test_allow_lists_that_admit_everyone_protect_nothing() -> None:
    everyone = load_settings(None, server={"pictrs_allow_from": ["0.0.0.0/0"]})
    assert any("pictrs_allow_from" in p for p in exposure_problems(everyone, "0.0.0.0"))
    open_proxy = load_settings(
        None, server={"pictrs_secret": SECRET, "proxy_allow_from": ["::/0", "127.0.0.1"]}
    )
    problems = exposure_problems(open_proxy, "0.0.0.0")
    assert len(problems) == 1 and "server.proxy_allow_from" in problems[0]


def test_serve_refuses_to_trust_lemmy_as_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lemmy's X-Forwarded-For names the uploader: trusting it would judge the uploader."""
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WARDEN_SERVER__TRUSTED_PROXIES", '["127.0.0.0/8"]')
    result = CliRunner().invoke(cli, ["serve"])  # loopback, proxy_allow_from loopback
    assert result.exit_code == 2
    assert "server.trusted_proxies" in result.output
    assert "server.proxy_allow_from" in result.output
    apart = load_settings(
        None, server={"trusted_proxies": ["127.0.0.1"], "proxy_allow_from": ["10.0.0.7"]}
    )
    assert trust_problems(apart) == []


def test_the_client_is_the_rightmost_address_not_a_trusted_proxy() -> None:
    ip = ipaddress.ip_address
    trusted = networks(["127.0.0.1/32", "10.0.0.0/8"])
    peer = ip("127.0.0.1")
    assert forwarded_client(ip("198.51.100.9"), ["203.0.113.5"], trusted) == ip("198.51.100.9")
    assert forwarded_client(peer, ["203.0.113.5"], trusted) == ip("203.0.113.5")
    # whatever the client wrote on the left is never used
    assert forwarded_client(peer, ["10.1.1.1, 203.0.113.5, 10.2.2.2"], trusted) == ip("203.0.113.5")
    assert forwarded_client(peer, ["10.1.1.1", "203.0.113.5:4431"], trusted) == ip("203.0.113.5")
    assert forwarded_client(peer, ["[2001:db8::7]:443"], trusted) == ip("2001:db8::7")
    assert forwarded_client(peer, ["10.1.1.1"], trusted) == ip("10.1.1.1")  # all trusted
    assert forwarded_client(peer, ["not-an-address"], trusted) is None  # refused, not guessed
    assert forwarded_client(peer, [], trusted) == peer


def _request_on(app: FastAPI, forwarded_for: str) -> Request:
    return Request(
        {
            "type": "http",
            "app": app,
            "method": "GET",
            "path": "/invites",
            "headers": [(b"x-forwarded-for", forwarded_for.encode())],
            "client": ("127.0.0.1", 40000),
        }
    )


def test_each_listener_believes_only_its_own_proxies(tmp_path: Path) -> None:
    """nginx (127.0.0.1) in front of the public pages is trusted there; on the main
    listener the same peer's X-Forwarded-For (Lemmy's: the uploader) is not."""
    settings = load_settings(
        None,
        data_dir=tmp_path,
        server={"public_port": free_port(), "public_trusted_proxies": ["127.0.0.1"]},
    )
    services = SimpleNamespace(settings=settings)
    public = create_public_app(settings, services)  # type: ignore[arg-type]
    main = FastAPI()
    main.state.services = services
    assert client_address(_request_on(public, "203.0.113.5")) == ipaddress.ip_address("203.0.113.5")
    assert client_address(_request_on(main, "203.0.113.5")) == ipaddress.ip_address("127.0.0.1")


def test_secrets_are_redacted_from_urls() -> None:
    assert redact("POST /pictrs/validate?secret=abc&source=upload") == (
        "POST /pictrs/validate?secret=[redacted]&source=upload"
    )
    assert redact("/x?a=1&SECRET=abc") == "/x?a=1&SECRET=[redacted]"


def _validate(
    base: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{base}/pictrs/validate",
        content=JPEG,
        headers={"Content-Type": "image/jpeg", **(headers or {})},
        params=params,
        timeout=60,
    )


def test_warden_serve_refuses_a_spoofed_x_forwarded_for_and_serves_public_pages_apart(
    tmp_path: Path,
) -> None:
    """The caller is 127.0.0.1, not a trusted proxy: its X-Forwarded-For naming an
    allowed address must not open the hook. With server.public_port set, /invites and
    the hash feeds are on the public listener only, and that listener has nothing else."""
    public_port = free_port()
    env = {
        "WARDEN_MODEL__PATH": str(tmp_path / "missing.onnx"),
        "WARDEN_SERVER__PICTRS_ALLOW_FROM": json.dumps(["198.51.100.0/24"]),
        "WARDEN_SERVER__PUBLIC_PORT": str(public_port),
    }
    with served_warden(tmp_path, env, wait_ports=(public_port,)) as warden:
        spoofed = _validate(warden.url, headers={"X-Forwarded-For": "198.51.100.7"})
        public = f"http://127.0.0.1:{public_port}"
        on_main = httpx.get(f"{warden.url}/invites")
        on_public = httpx.get(f"{public}/invites")
        key_on_public = httpx.get(f"{public}/.well-known/warden-feed-key")
        key_on_main = httpx.get(f"{warden.url}/.well-known/warden-feed-key")
        public_others = [
            httpx.post(f"{public}/pictrs/validate", content=JPEG).status_code,
            httpx.get(f"{public}/pictrs-proxy/healthz").status_code,
            httpx.get(f"{public}/authz").status_code,
            httpx.get(f"{public}/api/v1/decisions").status_code,
            httpx.get(f"{public}/openapi.json").status_code,
            httpx.get(f"{public}/metrics").status_code,
            httpx.get(f"{public}/console").status_code,
        ]
    assert spoofed.status_code == 403, spoofed.text
    # other instances pull feeds from the public listener only (docs/feeds.md)
    assert key_on_public.status_code == 200 and "fingerprint" in key_on_public.json()
    assert key_on_main.status_code == 404
    assert on_main.status_code == 404 and on_main.json() == {"detail": "Not Found"}
    # the invites router answers (404 only because invites are not enabled here)
    assert on_public.status_code == 404
    assert "not enabled on this instance" in on_public.text
    assert public_others == [404, 404, 404, 404, 404, 404, 404]


def test_warden_serve_takes_the_secret_in_a_header_and_never_logs_it(tmp_path: Path) -> None:
    """Behind a trusted proxy (127.0.0.1) the client is the rightmost untrusted
    X-Forwarded-For address; the secret counts as the HTTP Basic password pict-rs 0.5
    sends from the URL's user info, or an X-Warden-Secret header, or ?secret= - which
    the access log shows redacted."""
    env = {
        "WARDEN_MODEL__PATH": str(tmp_path / "missing.onnx"),
        "WARDEN_SERVER__PICTRS_SECRET": SECRET,
        "WARDEN_SERVER__PICTRS_ALLOW_FROM": json.dumps(["198.51.100.0/24"]),
        "WARDEN_SERVER__TRUSTED_PROXIES": json.dumps(["127.0.0.1/32"]),
        "WARDEN_SERVER__PROXY_ALLOW_FROM": json.dumps(["192.0.2.20/32"]),  # Lemmy elsewhere
    }
    allowed = {"X-Forwarded-For": "198.51.100.7"}
    with served_warden(tmp_path, env) as warden:
        user_info = warden.url.replace("http://", f"http://pictrs:{SECRET}@")
        basic = _validate(user_info, headers=allowed)
        header = _validate(warden.url, headers={**allowed, "X-Warden-Secret": SECRET})
        query = _validate(warden.url, headers=allowed, params={"secret": SECRET})
        wrong = _validate(warden.url, headers={**allowed, "X-Warden-Secret": "guess"})
        none = _validate(warden.url, headers=allowed)
        outside = _validate(
            warden.url,
            headers={"X-Warden-Secret": SECRET, "X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
        )
        warden.process.terminate()
        warden.process.wait(timeout=30)
        log = warden.output()
    # past the door: no model here, so the gate fails closed with its own answer
    for answer in (basic, header, query):
        assert answer.status_code == 503 and answer.json()["error"] == "model_unavailable"
    for answer in (wrong, none, outside):
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert "secret=[redacted]" in log  # the request was logged ...
    assert SECRET not in log  # ... without the secret
