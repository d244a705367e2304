"""Warden (or any ASGI app) served by uvicorn in a thread on a loopback port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from tests.servers.nginx import free_port, wait_for_port


class ServedApp:
    """An ASGI app on uvicorn in a thread. `proxy_headers=False` serves it as `warden
    serve` does (web/listeners.py): the ASGI client is the TCP peer, not uvicorn's
    reading of X-Forwarded-For (uvicorn's default, kept for the other tests)."""

    def __init__(
        self,
        app: Any,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        *,
        proxy_headers: bool = True,
    ) -> None:
        self.on_stop = on_stop
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            proxy_headers=proxy_headers,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        try:
            await self.server.serve()
        finally:
            if self.on_stop is not None:
                await self.on_stop()

    def start(self) -> None:
        self.thread.start()
        wait_for_port(self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
