"""The listeners `warden serve` opens, and their limits against slow and many clients.

One uvicorn server for the main app (the hook, the proxy, /authz, the API,
health) and, when `server.public_port` is set, a second one in the same process
and event loop for the public pages only (web/app.py `create_public_app`).

Limits, so that a storm of slow connections cannot stop validation for pict-rs:

- headers: uvicorn closes idle keep-alive connections but has no deadline for a
  request's headers (uvicorn 0.54 `protocols/http/h11_impl.py`: the keep-alive
  timer is armed only after a response), so a connection that sends half a
  request line and waits would hold a file descriptor forever.
  `HeaderDeadlineProtocol` closes a connection whose headers are not complete
  `server.header_timeout_s` after they began (or after it opened);
- headers' size: h11's `max_incomplete_event_size` = `server.max_header_bytes`;
- bodies: `server.body_timeout_s` (web/deadlines.py);
- connections: uvicorn's `limit_concurrency` = `server.max_connections`, lowered
  to stay below the open-files limit, whose soft value is raised to the hard one
  at start (1,030 slow connections used up the default 1,024 and validation
  stopped: issue 12, finding 5). Above it uvicorn answers 503.

uvicorn runs with `proxy_headers=False`: the TCP peer is the client unless it
is one of `server.trusted_proxies` (web/peers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from warden.config import Settings
from warden.web.exposure import redact_secrets_in_logs

log = logging.getLogger(__name__)

#: File descriptors kept back from connections: the database, the model, evidence,
#: outgoing connections to Lemmy and pict-rs, logs.
RESERVED_FDS = 256


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._awaiting_headers():
            self._arm_header_deadline()  # the next request on a keep-alive connection
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        """True until h11 has parsed a whole request line and headers."""
        return bool(self.conn.their_state is h11.IDLE)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_expired)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, wanted, exc)
        return soft
    return wanted


def connection_cap(settings: Settings, open_files: int, listeners: int) -> int:
    """`server.max_connections`, lowered so every listener's connections together stay
    below the open-files limit."""
    room = max((open_files - RESERVED_FDS) // max(listeners, 1), 8)
    cap = min(settings.server.max_connections, room)
    if cap < settings.server.max_connections:
        log.warning(
            "server.max_connections lowered from %d to %d per listener: the open-files "
            "limit is %d (raise it with `ulimit -n` or LimitNOFILE=)",
            settings.server.max_connections,
            cap,
            open_files,
        )
    return cap


@dataclass(frozen=True)
class Listener:
    """One address to serve one app on."""

    app: Any
    host: str
    port: int
    lifespan: Literal["on", "off"]  # "on" for the app that owns the services


def uvicorn_config(settings: Settings, listener: Listener, cap: int) -> uvicorn.Config:
    server = settings.server
    protocol = type(
        "WardenH11Protocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_s": server.header_timeout_s},
    )
    return uvicorn.Config(
        listener.app,
        host=listener.host,
        port=listener.port,
        log_level="info",
        lifespan=listener.lifespan,
        http=protocol,
        # the peer address decides server.proxy_allow_from and pictrs_allow_from;
        # Lemmy adds X-Forwarded-For: <its peer> to what it sends pict-rs, which
        # uvicorn would otherwise put in its place (web/peers.py)
        proxy_headers=False,
        timeout_keep_alive=max(round(server.keepalive_timeout_s), 1),
        limit_concurrency=cap,
        h11_max_incomplete_event_size=server.max_header_bytes,
        backlog=min(cap, 2048),
    )


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve_listeners` (several share them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_listeners(settings: Settings, listeners: list[Listener]) -> None:
    """Run every listener in this process until SIGINT or SIGTERM stops them all."""
    cap = connection_cap(settings, raise_open_files_limit(), len(listeners))
    servers = [_Server(uvicorn_config(settings, item, cap)) for item in listeners]
    redact_secrets_in_logs()  # after uvicorn has configured its loggers

    def stop(signum: int, _frame: object) -> None:
        for server in servers:
            server.handle_exit(signum, None)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    async def run_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    try:
        asyncio.run(run_all())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
