"""The vendor doubles, served once per module on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.scanners import doubles
from tests.servers.uvicorn_thread import ServedApp


@pytest.fixture(scope="package")
def vendor() -> Iterator[str]:
    served = ServedApp(doubles.app())
    served.start()
    yield f"http://127.0.0.1:{served.port}"
    served.stop()


@pytest.fixture
def state() -> doubles.State:
    doubles.STATE.reset()
    return doubles.STATE


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c
