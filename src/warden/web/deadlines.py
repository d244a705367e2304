"""The request-body deadline: a client may not hold a request open by sending slowly.

An ASGI middleware that gives every request `server.body_timeout_s` from the end
of its headers to deliver its whole body. A `receive()` that would wait past the
deadline raises `BodyTimeout` instead, inside the handler that is reading: the
validation hook turns it into a logged refusal (a decision row, then 408), the
ingest proxy into pict-rs's error shape, anything else into a plain 408 (the
app's one error handler, web/errors.py). Once the
body is complete the deadline no longer applies (a streaming response listening
for the client's disconnect must not be cut off).

Slow *headers* are the listener's business (web/listeners.py): the app only
sees a request once its headers are in.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warden.errors import BodyTimeout


class BodyDeadline:
    """Wraps `receive` so the body must arrive within `timeout_s` of the request."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                raise BodyTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} s "
                    "(server.body_timeout_s)"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, receive_in_time, send)
