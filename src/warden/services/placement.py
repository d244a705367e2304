"""Placing reviewed media in communities, after the fact, so moderators see their own.

An upload is attributed when it is stored (account, address, alias), but it
reaches a community only when someone posts it: Lemmy writes the image's URL
into `post.url`, `post.thumbnail_url` or the body. This service looks up the
aliases of open `review` decisions in Lemmy and records each post that uses
one (store/places.py):

- with `federated.lemmy_database_url`: one read-only query per batch
  (adapters/lemmy_db.py `posts_using`: url, thumbnail_url and body);
- else through Lemmy's search API with `lemmy.bot_token`
  (adapters/lemmy_posts.py: url and body; rate-limited, so a batch stops at
  Lemmy's first refusal and goes on at the next look-up).

It runs when the queue is opened, at most every `console.placement_s` seconds
(cached in between), checking the `console.placement_batch` least recently
checked aliases; posts made later are found at a later look-up. Nothing here
widens what anyone sees: a moderator's queue shows only what a row places in
a community they moderate, and media placed nowhere stays hidden from them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from warden.adapters.lemmy import LemmyApi
from warden.adapters.lemmy_db import LemmyDatabase
from warden.adapters.lemmy_posts import PostUse, posts_using
from warden.config import Settings
from warden.errors import UpstreamError, WardenError
from warden.store.console import ConsoleStore
from warden.store.decisions import DecisionLog
from warden.store.places import MediaPlace, PlaceStore

log = logging.getLogger(__name__)


def local_hosts(settings: Settings) -> list[str]:
    """The hosts this instance serves its images under: `federated.local_hosts`, else
    the host of `lemmy.url`."""
    hosts = [h.lower() for h in settings.federated.local_hosts]
    if not hosts and (host := urlsplit(settings.lemmy.url).hostname):
        hosts.append(host.lower())
    return hosts


class Placement:
    """Find the posts (and communities) that use the review queue's media."""

    def __init__(
        self,
        settings: Settings,
        *,
        places: PlaceStore,
        console: ConsoleStore,
        decisions: DecisionLog,
        lemmy: LemmyApi,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.places = places
        self.console = console
        self.decisions = decisions
        self.lemmy = lemmy
        self.clock = clock
        self._checked: dict[str, float] = {}  # alias -> when it was last looked up
        self._last: float | None = None
        self._lock = asyncio.Lock()

    @property
    def via(self) -> str:
        return "database" if self.settings.federated.lemmy_database_url else "api"

    def pending(self) -> list[str]:
        """Aliases of open review decisions, least recently checked first (blocking)."""
        limit = self.settings.console.queue_size * 4
        ids = self.console.review_ids(limit)
        handled = self.console.handled(ids)
        aliases: list[str] = []
        for decision_id in ids:
            record = self.decisions.get(decision_id) if decision_id not in handled else None
            if record is not None and record.alias and record.alias not in aliases:
                aliases.append(record.alias)
        aliases.sort(key=lambda a: self._checked.get(a, float("-inf")))
        return aliases[: self.settings.console.placement_batch]

    def _fresh(self) -> bool:
        interval = self.settings.console.placement_s
        return self._last is not None and self.clock() - self._last < interval

    async def refresh(self, *, force: bool = False) -> int:
        """Look up pending aliases unless that was done under `console.placement_s`
        ago; how many new places were recorded. Never raises for Lemmy: a failed
        look-up is logged and tried again at the next one."""
        if not force and self._fresh():
            return 0
        async with self._lock:
            if not force and self._fresh():
                return 0
            self._last = self.clock()
            aliases = await asyncio.to_thread(self.pending)
            if not aliases:
                return 0
            try:
                if self.via == "database":
                    uses = await asyncio.to_thread(self._from_database, aliases)
                else:
                    uses = await self._from_api(aliases)
            except (WardenError, SQLAlchemyError) as exc:
                log.warning("placing review media in communities failed: %s", exc)
                return 0
            found = [MediaPlace(a, p, c, n, self.via) for a, p, c, n in uses]
            return await asyncio.to_thread(self.places.add, found, datetime.now(UTC))

    def _from_database(self, aliases: list[str]) -> list[PostUse]:
        """One read-only query; the connection is closed again (a look-up a minute
        does not need a pool held open between them)."""
        database = LemmyDatabase(self.settings.federated.lemmy_database_url or "")
        try:
            uses = database.posts_using(aliases, local_hosts(self.settings))
        finally:
            database.close()
        stamp = self.clock()
        self._checked.update(dict.fromkeys(aliases, stamp))
        return uses

    async def _from_api(self, aliases: list[str]) -> list[PostUse]:
        token = self.settings.lemmy.bot_token
        if token is None:
            log.warning(
                "placing review media needs lemmy.bot_token or federated.lemmy_database_url"
            )
            return []
        uses: list[PostUse] = []
        hosts = local_hosts(self.settings)
        for alias in aliases:
            try:
                uses.extend(await posts_using(self.lemmy, token.get_secret_value(), alias, hosts))
            except UpstreamError as exc:  # rate-limited or down: keep what was found
                log.warning("Lemmy's search stopped the placement look-up: %s", exc.message)
                break
            self._checked[alias] = self.clock()
        return uses
