"""What nginx passed on, and to whom: a loopback HTTP server that records every request.

It stands where lemmy-ansible's nginx sends traffic (Lemmy at `lemmy:8536`,
lemmy-ui at `lemmy-ui:1234`, or the proxy container behind host nginx) and
reproduces none of their behaviour: it answers 200 `{}` to everything, so a
test can see exactly which requests got through nginx and with which raw
request line and headers. Warden's own look-ups go to the Lemmy double.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the request line's target, as nginx sent it
    headers: dict[str, str]


class Recorder:
    """A started recording server (`stop()` when done)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with recorder._lock:
                    recorder.seen.append(
                        Seen(
                            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                        )
                    )
                body = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _record

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def targets(self) -> list[str]:
        with self._lock:
            return [seen.target for seen in self.seen]

    def last(self) -> Seen:
        with self._lock:
            return self.seen[-1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
