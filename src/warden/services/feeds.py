"""Hash feeds at work: publish banks as signed feeds, follow other instances' feeds.

Over ~400 lines: the publisher and the subscriber share one batch model and one
store transaction discipline; split, each half would import the other's internals.

Publisher: every `feeds.publish_check_s` the published banks are compared with
their feed logs (only when the banks changed at all); what was added or removed
becomes numbered `add`/`remove` entries, served from `GET /feeds/v1/{feed}` and
pushed at once to the inboxes the admin named.

Subscriber: every `feeds.poll_interval_s`, and at once when a push arrives
ahead of the cursor, each feed is pulled from its cursor. A batch changes
nothing until its signature verifies with the pinned key and it continues the
cursor exactly (domain/feeds.py). Its entries become listings (provenance), and
the local bank follows the listings through BankStore's public methods: an
entry is in a subscription's bank while the feed lists it, or, for a quorum
subscription, while at least N distinct publishers do. Entries an admin added
by hand are never removed by a feed.

Failure never spreads: an unreachable or misbehaving publisher leaves the bank
as it is (the gate never waits for a feed), a batch whose signature fails on a
pull quarantines the feed until the admin resumes it (a forged *push* is only
refused: anybody can post to an inbox), and a batch that would retract more
than half of a feed's listings is held the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from warden.adapters.feed_client import FeedClient, parse_json
from warden.config import Settings
from warden.domain.banks import BankAction
from warden.domain.feeds import (
    Category,
    EntryOp,
    FeedBatch,
    SuggestedAction,
    Trust,
    advance,
    batch_id,
    check_feed_name,
    check_fingerprint,
    check_position,
    final_listing,
    fingerprint_of,
)
from warden.errors import (
    BankError,
    FeedBadSignature,
    FeedError,
    FeedMalformed,
    FeedOutOfOrder,
    FeedQuarantined,
    FeedRateLimited,
    FeedReplay,
    FeedRollback,
    FeedUnknown,
    InputError,
)
from warden.services.feed_banks import follow_listings
from warden.services.feed_keys import FeedSigner, key_path, verify_envelope
from warden.store.banks import BankStore
from warden.store.feed_tables import PublishedFeed, Subscription
from warden.store.feeds import FeedStore, load_or_create_key

log = logging.getLogger(__name__)
MASS_RETRACTION_FLOOR = 100  # retractions a batch may carry before the half-rule applies


class FeedService:
    """Publishing and subscribing for one instance; built by services/, run by the app."""

    def __init__(
        self,
        settings: Settings,
        feeds: FeedStore,
        banks: BankStore,
        *,
        signer: FeedSigner,
        client: FeedClient | None = None,
        on_bank_change: Callable[[], object] | None = None,
        on_quarantine: Callable[[str, str, str, str], object] | None = None,
    ) -> None:
        self.settings = settings
        # told (url, bank, code, message) when a feed is quarantined: the admin's alert
        self.on_quarantine = on_quarantine
        self.feeds = feeds
        self.banks = banks
        self.signer = signer
        self.client = client
        self.on_bank_change = on_bank_change  # e.g. the matcher's refresh, so a push bites now
        self._marker: object = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._pushes: dict[int, deque[float]] = {}
        self._wake = asyncio.Event()

    # -- publishing -------------------------------------------------------------------

    def publish(
        self, bank: str, category: Category, *, name: str | None = None, push: Sequence[str] = ()
    ) -> PublishedFeed:
        found = self.banks.bank(bank)
        if found.action is BankAction.ALLOW:
            raise BankError(f"bank {bank!r} allows; only reject and review banks are published")
        feed = self.feeds.publish(
            check_feed_name(name or bank),
            bank,
            found.kind,
            category,
            SuggestedAction(found.action.value),
            list(push),
        )
        self._marker = None  # diff on the next check
        return feed

    def refresh_published(self) -> list[tuple[PublishedFeed, int]]:
        """Append what changed in published banks; (feed, head before) for each changed."""
        marker = self.banks.update_marker()
        if marker == self._marker:
            return []
        changed = []
        for feed in self.feeds.published(active_only=True):
            bank = self.banks.find_bank(feed.bank)
            if bank is None:
                log.warning("published feed %s: bank %s is gone; feed kept", feed.name, feed.bank)
                continue
            live = {value for _, value in self.banks.live_values(bank.id)}
            before, after = self.feeds.catch_up(feed.id, live)
            if after != before:
                changed.append((feed, before))
        self._marker = marker
        return changed

    def batch(self, name: str, cursor: int, *, limit: int | None = None) -> FeedBatch:
        feed = self.feeds.feed(name)
        if cursor > feed.head:  # the subscriber is ahead: say where the head is (rollback)
            cursor = feed.head
        entries = self.feeds.log(feed, cursor, limit or self.settings.feeds.batch_max_entries)
        return FeedBatch(
            feed=feed.name,
            key=self.signer.fingerprint,
            kind=feed.kind,
            category=feed.category,
            cursor=cursor,
            next=entries[-1].seq if entries else cursor,
            head=feed.head,
            issued_at=datetime.now(UTC),
            entries=tuple(entries),
        )

    def serve(self, name: str, cursor: int, if_none_match: str | None) -> tuple[bytes | None, str]:
        """The signed batch after `cursor` and its ETag; None as body when the ETag the
        subscriber holds still describes it (304)."""
        feed = self.feeds.feed(name)
        start = min(cursor, feed.head)
        etag = f'W/"{self.signer.fingerprint[8:24]}-{feed.id}-{start}-{feed.head}"'
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return None, etag
        return self.signer.envelope(self.batch(name, cursor)), etag

    async def push(self, feed: PublishedFeed, since: int) -> None:
        if not feed.push_to or self.client is None:
            return
        batch = await asyncio.to_thread(self.batch, feed.name, since)
        if batch.next < batch.head:
            return  # too much for one push: subscribers pull the rest
        body = self.signer.envelope(batch)
        for url in feed.push_to:
            try:
                status = await self.client.push(url, body)
                if status == 409:  # the subscriber had pulled it already: normal
                    log.info("push of feed %s to %s: already applied", feed.name, url)
                elif status >= 300:
                    log.warning("push of feed %s to %s answered HTTP %s", feed.name, url, status)
            except FeedError as exc:
                log.warning("push of feed %s to %s failed: %s", feed.name, url, exc)

    # -- subscribing ------------------------------------------------------------------

    def subscribe(
        self, url: str, fingerprint: str, bank: str, trust: Trust, quorum: int = 1
    ) -> Subscription:
        if not url.startswith(("http://", "https://")) or "/feeds/v1/" not in url:
            raise InputError(f"{url[:200]!r}: expected http(s)://HOST/feeds/v1/FEED")
        feed = check_feed_name(url.rstrip("/").rsplit("/", 1)[-1])
        if quorum < 1 or (quorum > 1 and trust is not Trust.REJECT):
            raise InputError("--quorum is 1 or more, and only with --action reject")
        existing = self.banks.find_bank(bank)
        if existing is not None and existing.action.value != trust.value:
            raise BankError(
                f"bank {bank!r} {existing.action.value}s; a {trust.value} feed needs a "
                f"{trust.value} bank of its own"
            )
        return self.feeds.subscribe(
            url.rstrip("/"), feed, check_fingerprint(fingerprint), bank, trust, quorum
        )

    def _lock(self, sub_id: int) -> asyncio.Lock:
        return self._locks.setdefault(sub_id, asyncio.Lock())

    async def _pin_key(self, sub: Subscription) -> str:
        if sub.public_key is not None:
            return sub.public_key
        assert self.client is not None
        answer = await self.client.public_key(sub.url)
        try:
            raw = base64.b64decode(str(answer.get("key")), validate=True)
        except ValueError:
            raise FeedMalformed(f"{sub.url}: the published key is not base64") from None
        if len(raw) != 32 or fingerprint_of(raw) != sub.fingerprint:
            raise FeedBadSignature(
                f"{sub.url}: the publisher's key has fingerprint {fingerprint_of(raw)}, "
                f"not the {sub.fingerprint} this subscription pins"
            )
        await asyncio.to_thread(self.feeds.set_key, sub.id, raw.hex())
        return raw.hex()

    async def sync(self, sub: Subscription) -> int:
        """Pull one feed up to its head (at most `max_batches_per_sync` batches); the
        number of entries applied. Errors are recorded on the subscription."""
        if sub.quarantined or self.client is None:
            return 0
        applied = 0
        async with self._lock(sub.id):
            try:
                public = await self._pin_key(sub)
                for _ in range(self.settings.feeds.max_batches_per_sync):
                    sub = await asyncio.to_thread(self.feeds.subscription, sub.id)
                    pulled = await self.client.pull(sub.url, sub.position.cursor, sub.etag)
                    if pulled.body is None:  # 304: nothing new, and the publisher is fine
                        await asyncio.to_thread(self.feeds.note, sub.id, error=None)
                        break
                    batch = verify_envelope(
                        pulled.body, public, self.settings.feeds.batch_max_entries
                    )
                    applied += await asyncio.to_thread(self.apply, sub, batch, pulled.body)
                    if batch.next == batch.cursor or batch.next >= batch.head:
                        await asyncio.to_thread(
                            self.feeds.note, sub.id, error=None, etag=pulled.etag
                        )
                        break
            except FeedError as exc:
                await asyncio.to_thread(self._failed, sub, exc, pulled=True)
            except Exception as exc:  # a feed must never take the service down
                log.exception("feed %s: sync failed", sub.url)
                await asyncio.to_thread(self.feeds.note, sub.id, error=f"internal: {exc}")
        if applied:
            await self._banks_changed()
        return applied

    def _failed(self, sub: Subscription, exc: FeedError, *, pulled: bool) -> None:
        hold = isinstance(exc, FeedRollback | FeedQuarantined) or (
            pulled and isinstance(exc, FeedBadSignature)
        )
        if hold:
            log.error(
                "feed %s QUARANTINED (%s): %s; its entries stay in bank %s; "
                "`warden feeds resume %s` once the publisher is sorted out",
                sub.url,
                exc.code,
                exc,
                sub.bank,
                sub.url,
            )
            if self.on_quarantine is not None:
                self.on_quarantine(sub.url, sub.bank, exc.code, str(exc))
        else:
            log.warning("feed %s: %s: %s", sub.url, exc.code, exc)
        self.feeds.note(sub.id, error=f"{exc.code}: {exc}", quarantine=hold)

    async def sync_all(self) -> int:
        subs = await asyncio.to_thread(self.feeds.subscriptions)
        return sum([await self.sync(sub) for sub in subs])

    async def receive(self, body: bytes) -> dict[str, Any]:
        """A pushed batch (POST /feeds/v1/inbox): applied when it continues the cursor,
        a pull scheduled when it is ahead of it; refused otherwise."""
        envelope = parse_json(body, "inbox")
        claimed = envelope.get("batch")
        if not isinstance(claimed, dict):
            raise FeedMalformed("expected {'batch': {...}, 'signature': '<base64>'}")
        subs = [
            s
            for s in await asyncio.to_thread(self.feeds.subscriptions)
            if s.feed == claimed.get("feed") and s.fingerprint == claimed.get("key")
        ]
        if not subs:
            raise FeedUnknown("no subscription follows that feed and key")
        applied = 0
        for sub in subs:
            if sub.quarantined:
                raise FeedQuarantined(f"feed {sub.url} is quarantined")
            self._rate(sub)
            if sub.public_key is None:
                self._wake.set()
                return {"status": "pull_scheduled"}
            async with self._lock(sub.id):
                sub = await asyncio.to_thread(self.feeds.subscription, sub.id)
                batch = verify_envelope(envelope, sub.public_key or "", self._max_entries)
                try:
                    applied += await asyncio.to_thread(self.apply, sub, batch, claimed)
                except FeedOutOfOrder:
                    self._wake.set()
                    return {"status": "pull_scheduled"}
                except FeedReplay:
                    raise  # a push the pull already applied: normal, and not an error to show
                except FeedError as exc:
                    await asyncio.to_thread(self._failed, sub, exc, pulled=False)
                    raise
        if applied:
            await self._banks_changed()
        return {"status": "applied", "entries": applied}

    @property
    def _max_entries(self) -> int:
        return self.settings.feeds.batch_max_entries

    def _rate(self, sub: Subscription) -> None:
        now = time.monotonic()
        window = self._pushes.setdefault(sub.id, deque())
        while window and window[0] < now - 60:
            window.popleft()
        if len(window) >= self.settings.feeds.inbox_per_minute:
            raise FeedRateLimited(f"more than {len(window)} pushes a minute for {sub.url}")
        window.append(now)

    def apply(self, sub: Subscription, batch: FeedBatch, body: dict[str, Any]) -> int:
        """Apply a verified batch (blocking): checks, listings, banks, then the cursor."""
        if batch.feed != sub.feed or batch.key != sub.fingerprint:
            raise FeedMalformed(f"batch for feed {batch.feed} by {batch.key}, not this one")
        bid = batch_id(body)
        if self.feeds.seen(sub.id, bid):
            raise FeedReplay("this batch was applied before")
        check_position(
            batch,
            sub.position,
            now=datetime.now(UTC),
            max_age_s=self.settings.feeds.max_batch_age_s,
            max_skew_s=self.settings.feeds.max_clock_skew_s,
        )
        final = final_listing(batch.entries)
        retracted = sum(1 for e in final.values() if e.op is EntryOp.REMOVE)
        if retracted > MASS_RETRACTION_FLOOR:
            listed = self.feeds.listing_count(sub.id)
            if retracted * 2 > listed:
                raise FeedQuarantined(
                    f"one batch retracts {retracted} of {listed} entries: held for the admin",
                    code="feed_mass_retraction",
                )
        if final:
            self.banks.ensure_bank(
                sub.bank,
                batch.kind,
                BankAction(sub.trust.value),
                f"hash feed {sub.url} ({batch.category.value})",
            )
        self.feeds.record_listings(sub.id, batch.entries)
        follow_listings(self.feeds, self.banks, sub, list(final))
        self.feeds.advance(sub.id, bid, sub.position, advance(batch, sub.position))
        return len(batch.entries)

    async def _banks_changed(self) -> None:
        if self.on_bank_change is not None:
            try:
                await asyncio.to_thread(self.on_bank_change)
            except Exception:
                log.exception(
                    "bank refresh after a feed change failed; the next refresh applies it"
                )

    # -- running ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish and follow until `stop`; nothing here can fail the service."""
        await asyncio.gather(self._publish_loop(stop), self._follow_loop(stop))

    async def _publish_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for feed, since in await asyncio.to_thread(self.refresh_published):
                    await self.push(feed, since)
            except Exception:
                log.exception("published feeds could not be refreshed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.feeds.publish_check_s)

    async def _follow_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync_all()
            except Exception:
                log.exception("feeds could not be pulled; retrying at the next interval")
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper},
                timeout=self.settings.feeds.poll_interval_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            stopper.cancel()
            self._wake.clear()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def build_feed_service(
    settings: Settings,
    feeds: FeedStore,
    banks: BankStore,
    *,
    on_bank_change: Callable[[], object] | None = None,
    on_quarantine: Callable[[str, str, str, str], object] | None = None,
) -> FeedService:
    """The feed service for `warden serve` and the CLI (key made on first use)."""
    client = FeedClient(
        timeout_s=settings.feeds.timeout_s, max_bytes=settings.feeds.max_batch_bytes
    )
    return FeedService(
        settings,
        feeds,
        banks,
        signer=FeedSigner(load_or_create_key(key_path(settings))),
        client=client,
        on_bank_change=on_bank_change,
        on_quarantine=on_quarantine,
    )
