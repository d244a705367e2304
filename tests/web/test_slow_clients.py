"""Slow and many clients (issue 12, finding 5): 1,030 slow connections used up the
1,024 open files and validation stopped. A real `warden serve` on loopback: slow
connections are held (or dropped at their deadline) and pict-rs's validation from
another client is still answered; a slow body is refused and logged."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from tests.conftest import encode, gradient
from tests.servers.warden_serve import served_warden
from warden.web.deadlines import BodyDeadline
from warden.web.errors import answer_warden_errors

SLOW = 1_100  # more than the 1,024 files a service often starts with
#: The soft open-files limit many hosts start services with (systemd, Docker).
COMMON_SOFT_LIMIT = 1_024
HALF_REQUEST = b"POST /pictrs/validate HTTP/1.1\r\nHost: warden\r\nContent-Type: image/jp"


def _soft_limit_1024() -> None:
    """In the server process: soft limit 1,024, hard limit as it was."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (COMMON_SOFT_LIMIT, hard))


@pytest.fixture
def room_for_sockets() -> Iterator[None]:
    """This test process needs more than 1,000 descriptors of its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW + 512
    if hard != resource.RLIM_INFINITY and hard < needed * 2:
        pytest.skip(f"the hard open-files limit ({hard}) leaves no room for {SLOW} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed * 2), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def slow_connections(port: int, count: int, first_bytes: bytes) -> Iterator[list[socket.socket]]:
    """`count` connections that each send `first_bytes` and then nothing; all closed at
    the end whatever happens."""
    with ExitStack() as stack:
        opened = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            sock.sendall(first_bytes)
            opened.append(sock)
        yield opened


def still_open(sock: socket.socket) -> bool:
    """True when the server has neither closed nor answered this connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""  # pragma: no cover - data means answered
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length (headers and body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_thousand_slow_connections_do_not_stop_validation(
    tmp_path: Path, room_for_sockets: None
) -> None:
    """The server starts with the common soft limit of 1,024 files; 1,100 connections
    that sent half a request are held open while pict-rs validates an ordinary photo."""
    env = {"WARDEN_SERVER__HEADER_TIMEOUT_S": "120", "WARDEN_SERVER__BODY_TIMEOUT_S": "120"}
    photo = encode(gradient(640, 480, seed=3), "JPEG", quality=90)
    started = time.monotonic()
    with (
        served_warden(tmp_path, env, preexec=_soft_limit_1024) as warden,
        slow_connections(warden.port, SLOW, HALF_REQUEST) as slow,
    ):
        answer = httpx.post(
            f"{warden.url}/pictrs/validate",
            content=photo,
            headers={"Content-Type": "image/jpeg"},
            timeout=60,
        )
        held = sum(still_open(sock) for sock in slow)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "accept"
    assert held == SLOW  # the storm was still there when validation was answered
    assert time.monotonic() - started < 300


def test_slow_headers_are_cut_off_and_slow_bodies_refused_and_logged(tmp_path: Path) -> None:
    env = {
        "WARDEN_MODEL__PATH": str(tmp_path / "missing.onnx"),
        "WARDEN_SERVER__HEADER_TIMEOUT_S": "1",
        "WARDEN_SERVER__BODY_TIMEOUT_S": "1",
    }
    with served_warden(tmp_path, env) as warden:
        with (
            slow_connections(warden.port, 20, HALF_REQUEST) as slow,
            socket.create_connection(("127.0.0.1", warden.port), timeout=15) as kept,
        ):
            # a keep-alive connection: one whole request, then half of the next
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n")
            first = read_response(kept)
            kept.sendall(HALF_REQUEST)
            waiting = [*slow, kept]
            deadline = time.monotonic() + 10  # 1 s each, with room for a busy machine
            while time.monotonic() < deadline and any(still_open(s) for s in waiting):
                time.sleep(0.25)
            cut = [not still_open(sock) for sock in waiting]
        with socket.create_connection(("127.0.0.1", warden.port), timeout=15) as body:
            body.sendall(
                b"POST /pictrs/validate HTTP/1.1\r\nHost: warden\r\n"
                b"Content-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n" + b"\xff\xd8" * 10
            )
            answer = read_response(body).decode(errors="replace")
        database = warden.data_dir / "warden.db"
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT decision, source, reasons FROM decisions").fetchall()
    assert first.startswith(b"HTTP/1.1 200")
    assert all(cut), f"still open after 10 s: {[i for i, c in enumerate(cut) if not c]} of 0-20"
    assert answer.startswith("HTTP/1.1 408"), answer
    assert json.loads(answer.partition("\r\n\r\n")[2])["error"] == "body_timeout"
    assert [(decision, json.loads(reasons)[0]["code"]) for decision, _, reasons in rows] == [
        ("reject", "body_timeout")
    ]


async def test_the_body_deadline_answers_408_wherever_the_body_is_read() -> None:
    """Any route (here a bare one) that waits on a body past the deadline gets 408 in
    Warden's error shape, not a hung request."""
    app = FastAPI()
    app.add_middleware(BodyDeadline, timeout_s=0.2)
    answer_warden_errors(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    sent: list[dict[str, object]] = []
    stalled = asyncio.Event()

    async def receive() -> dict[str, object]:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b"part", "more_body": True}
        await stalled.wait()  # the client never sends the rest
        return {"type": "http.disconnect"}

    messages: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"content-length", b"100")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8790),
    }
    await asyncio.wait_for(app(scope, receive, send), 5)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")  # type: ignore[misc]
    assert start["status"] == 408
    assert json.loads(body)["error"] == "body_timeout"
