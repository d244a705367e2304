"""The local alert receivers, started once for the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts import receiver
from tests.servers.uvicorn_thread import ServedApp


@pytest.fixture(scope="package")
def hooks() -> Iterator[str]:
    served = ServedApp(receiver.app())
    served.start()
    yield f"http://127.0.0.1:{served.port}"
    served.stop()


@pytest.fixture(scope="package")
def smtp() -> Iterator[int]:
    server = receiver.SmtpReceiver()
    server.start()
    yield server.port
    server.stop()


@pytest.fixture
def inbox() -> receiver.Inbox:
    receiver.INBOX.reset()
    return receiver.INBOX
