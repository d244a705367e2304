"""The placement look-up fails closed and never takes the queue down.

When Lemmy cannot answer (503 while it starts: 0.19.3 src/lib.rs:251-262), the
look-up logs and places nothing: the admin's queue still opens, and a moderator
sees nothing rather than someone else's media. Once Lemmy answers again, the next
look-up places the media.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.console.world import Post, World, staged
from tests.servers import lemmy_schema
from warden.services.factories import lemmy_client
from warden.store.console import ConsoleSession


@pytest.fixture(params=["0.19.5", "1.0"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, astronaut: Image.Image
) -> Iterator[World]:
    federated = {"local_hosts": ["lemmy.example"]}
    yield from staged(request.param, tmp_path, astronaut, federated, moderators=True)


def _refresh(world: World) -> int:
    """One forced look-up, on this thread's own event loop with its own Lemmy client
    (the served app's client belongs to the server's loop)."""
    placement = world.services.console.service.placement  # type: ignore[union-attr]

    async def go() -> int:
        placement.lemmy = lemmy_client(placement.settings)
        try:
            return await placement.refresh(force=True)
        finally:
            await placement.lemmy.http.aclose()

    return asyncio.run(go())


def _moderator(communities: tuple[int, ...]) -> ConsoleSession:
    return ConsoleSession(
        99, "moddy", "moderator", communities, "csrf", datetime.now(UTC) + timedelta(hours=1)
    )


def test_lemmy_down_places_nothing_and_the_queue_still_opens(world: World) -> None:
    service = world.services.console.service  # type: ignore[union-attr]
    version = "1.0" if world.lemmy.api == "v4" else "0.19.5"
    url = lemmy_schema.image_url("lemmy.example", "reviewed-1.jpg", version)
    world.lemmy.posts.append(Post(101, 7, "pics", url=url))
    world.services.decisions.set_alias(world.ids["reviewed"], "reviewed-1.jpg")
    moderator = _moderator((7,))

    world.lemmy.down = True
    assert _refresh(world) == 0
    assert service.queue(moderator) == []  # placed nowhere: not shown
    assert len(service.queue(_moderator(()))) == 0
    admin = ConsoleSession(1, "admin", "admin", (), "c", datetime.now(UTC) + timedelta(hours=1))
    assert len(service.queue(admin)) == 4  # admins see everything, placed or not

    world.lemmy.down = False
    assert _refresh(world) == 1
    assert [i.record.id for i in service.queue(moderator)] == [world.ids["reviewed"]]
    assert _refresh(world) == 0  # a place counts once


def test_without_a_bot_token_or_database_nothing_is_asked(world: World) -> None:
    service = world.services.console.service  # type: ignore[union-attr]
    world.services.decisions.set_alias(world.ids["reviewed"], "reviewed-1.jpg")
    service.placement.settings = service.settings.model_copy(
        update={"lemmy": service.settings.lemmy.model_copy(update={"bot_token": None})}
    )
    assert _refresh(world) == 0
    assert world.lemmy.searches == []
