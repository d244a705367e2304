"""Local receivers for alerts: one HTTP app for the webhook kinds, one tiny SMTP server.

What they accept follows each service's documented API:

- Discord "Execute Webhook" (https://discord.com/developers/docs/resources/webhook#execute-webhook):
  POST JSON with `content` (at most 2000 characters) -> 204; Slack incoming
  webhooks (https://api.slack.com/messaging/webhooks): POST JSON with `text` -> 200 "ok".
- Matrix client-server API, PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
  (https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid):
  Bearer token, JSON event content -> 200 {"event_id"}; 401 M_UNKNOWN_TOKEN otherwise.
- SMTP (RFC 5321) with AUTH PLAIN (RFC 4616): just enough of it for smtplib.
"""

from __future__ import annotations

import base64
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

MATRIX_TOKEN = "syt_matrix_token_3c1d9e"
HOOK_TOKEN = "hooktoken-7a2b6f9e0c"


@dataclass
class Inbox:
    received: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
        self.fail = False

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.received]


INBOX = Inbox()


async def _keep(kind: str, request: Request) -> None:
    body = await request.body()
    with INBOX.lock:
        INBOX.received.append(
            {"kind": kind, "path": request.url.path, "headers": dict(request.headers), "body": body}
        )


async def discord(request: Request) -> Response:
    if INBOX.fail:
        return JSONResponse({"message": "Internal Server Error"}, 500)
    await _keep("discord", request)
    return Response(status_code=204)


async def slack(request: Request) -> Response:
    await _keep("slack", request)
    return PlainTextResponse("ok")


async def matrix(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {MATRIX_TOKEN}":
        return JSONResponse({"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown token"}, 401)
    await _keep("matrix", request)
    return JSONResponse({"event_id": "$abc:example.org"})


async def signed(request: Request) -> Response:
    await _keep("signed", request)
    return JSONResponse({"ok": True})


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/webhooks/1/{token}", discord, methods=["POST"]),
            Route("/services/T/B/{token}", slack, methods=["POST"]),
            Route("/_matrix/client/v3/rooms/{room}/send/{etype}/{txn}", matrix, methods=["PUT"]),
            Route("/signed", signed, methods=["POST"]),
        ]
    )


class _Smtp(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        mail: dict[str, Any] = {"kind": "smtp", "rcpt": [], "auth": None}
        self.reply("220 receiver ESMTP")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-receiver")
                self.reply("250 AUTH PLAIN")
            elif verb == "HELO":
                self.reply("250 receiver")
            elif verb == "AUTH":
                parts = line.split(" ")
                mail["auth"] = base64.b64decode(parts[2]).split(b"\0")[1:]
                self.reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                self.reply("250 OK")
            elif verb == "RCPT":
                mail["rcpt"].append(line.split(":", 1)[1].strip("<> "))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk
                mail["body"] = data
                with INBOX.lock:
                    INBOX.received.append(dict(mail))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


class SmtpReceiver:
    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
