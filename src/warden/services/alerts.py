"""Alerts: wake the admins when an attack starts or the gate is in trouble.

Slightly over ~400 lines: the events, their dedup and the delivery loop share state
(the spike detector is apart, in services/spikes.py).

Events and their dedup keys (one message per key per `alerts.repeat_after_s`;
repeats in between are counted into the next message):

    csam_match           a known-CSAM bank (or PhotoDNA) matched    csam:<bank or scanner>
    refusal_spike        refusals well above their baseline rate    spike
    gate_failing_closed  a refusal because a part is down           closed:<code>[:<scanner>]
    evidence_failed      refused media could not be preserved       evidence
    flag_action          an admin flagged media into a bank         flag:<bank>
    ban_action           an uploader was banned                     ban
    feed_quarantined     a followed hash feed was quarantined       feed:<url>

On top, each channel sends at most `alerts.max_per_hour` messages an hour, so a
flood produces a few useful messages, not thousands. `observe` reads a decision
(called by the gate after each one is written) and never blocks it: messages
are queued and delivered by one background task, started on first use (or by
`start`); with no channel configured `build_alerts` returns None and nothing runs.
Events raised in a worker thread (a feed sync's database step) are handed to the
event loop the alerts were started on.

Never in a message: media, the uploader's picture, a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from warden.adapters.notify.matrix import MatrixRoom
from warden.adapters.notify.message import Alert, Notifier
from warden.adapters.notify.signed_webhook import SignedWebhook
from warden.adapters.notify.smtp import SmtpMail
from warden.adapters.notify.webhook_json import JsonWebhook
from warden.config import AlertChannelSettings, AlertSettings, Settings
from warden.domain.verdict import Decision, Verdict
from warden.errors import ConfigError, WardenError
from warden.services.external_scan import REDACTOR, read_secret
from warden.services.spikes import SpikeDetector

log = logging.getLogger(__name__)

EVENTS = (
    "csam_match",
    "refusal_spike",
    "gate_failing_closed",
    "evidence_failed",
    "flag_action",
    "ban_action",
    "feed_quarantined",
)
_QUEUE = 256  # alerts waiting for delivery; beyond, new ones are dropped (and logged)


@dataclass
class Channel:
    """A notifier, the events it takes, and its hourly budget."""

    notifier: Notifier
    events: frozenset[str] = frozenset()  # empty: all
    sent: deque[float] = field(default_factory=deque)

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class Alerts:
    """Deduplicates, rate-limits and delivers alerts to the configured channels."""

    def __init__(
        self,
        channels: Sequence[Channel],
        settings: AlertSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = list(channels)
        self.settings = settings
        self.client = client
        self.clock = clock
        self.spikes = SpikeDetector(
            settings.spike_window_s,
            settings.spike_baseline_s,
            settings.spike_factor,
            settings.spike_min_refusals,
        )
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._queue: asyncio.Queue[tuple[Channel, Alert]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # where the worker runs
        self._lock = threading.Lock()  # dedup and budgets, for events from threads
        self.dropped = 0

    def start(self) -> None:
        """Start the delivery task on the running loop now (else on first use), so
        that events raised in worker threads before any decision have a loop to go to."""
        self._ensure_worker(asyncio.get_running_loop())

    def carry_over(self, old: Alerts) -> None:
        """Keep the dedup memory, the hourly budgets (per channel name) and, when its
        settings are unchanged, the spike baseline of the alerts this one replaces
        (a reload), so that a reload in a flood does not repeat every message."""
        with old._lock:
            self._last.update(old._last)
            self._suppressed.update(old._suppressed)
            budgets = {c.notifier.name: c.sent for c in old.channels}
            same_spikes = (
                self.spikes.window_s == old.spikes.window_s
                and self.spikes.baseline_s == old.spikes.baseline_s
            )
            if same_spikes:
                old.spikes.factor, old.spikes.min_refusals = (
                    self.spikes.factor,
                    self.spikes.min_refusals,
                )
                self.spikes = old.spikes
        for channel in self.channels:
            if channel.notifier.name in budgets:
                channel.sent = deque(budgets[channel.notifier.name])

    # -- events ------------------------------------------------------------------

    def observe(self, verdict: Verdict, *, source: str, uploader: str | None = None) -> None:
        """Read one recorded decision for the events it carries."""
        if verdict.decision is not Decision.REJECT:
            return
        now = self.clock()
        for match in verdict.matches:
            if match.get("csam"):
                bank = str(match.get("bank"))
                self.emit(
                    "csam_match",
                    f"csam:{bank}",
                    "Known-CSAM match",
                    f"Media matching the CSAM bank '{bank}' was refused and preserved as evidence.",
                    {
                        "bank": bank,
                        "source": source,
                        "sha256": verdict.sha256,
                        "uploader": uploader,
                    },
                )
        for reason in verdict.reasons:
            detail = reason.detail
            if reason.code == "scanner_reject" and detail.get("csam") is True:
                scanner = str(detail.get("scanner"))
                self.emit(
                    "csam_match",
                    f"csam:{scanner}",
                    "Known-CSAM match (PhotoDNA)",
                    f"PhotoDNA scanner '{scanner}' matched refused media.",
                    {
                        "scanner": scanner,
                        "source": source,
                        "sha256": verdict.sha256,
                        "uploader": uploader,
                    },
                )
            elif detail.get("fail_mode") == "closed":
                part = detail.get("scanner")
                key = f"closed:{reason.code}" + (f":{part}" if part else "")
                self.emit(
                    "gate_failing_closed",
                    key,
                    "The media gate is failing closed",
                    f"Media is being refused because a part is down: {reason.code}.",
                    {"code": reason.code, "scanner": part, "source": source},
                )
            elif reason.code == "evidence_error":
                self.emit(
                    "evidence_failed",
                    "evidence",
                    "Evidence not preserved",
                    "Refused media could not be written to the evidence store.",
                    {"sha256": verdict.sha256, "source": source},
                )
        spike = self.spikes.record(now)
        if spike is not None:
            count, expected = spike
            self.emit(
                "refusal_spike",
                "spike",
                "Spike of refused media",
                f"{count} refusals in the last {self.settings.spike_window_s:g} s "
                f"(the baseline predicts {expected:.1f}).",
                {
                    "refusals": count,
                    "expected": round(expected, 1),
                    "first_reason": verdict.codes[0] if verdict.codes else None,
                },
            )

    def flag_action(self, *, by: str, bank: str, hashes: int, label: str = "") -> None:
        """An admin (or a scanner hit) put media into a bank."""
        self.emit(
            "flag_action",
            f"flag:{bank}",
            "Media flagged",
            f"{by} flagged {label or 'media'} into bank '{bank}'.",
            {"by": by, "bank": bank, "hashes": hashes},
        )

    def feed_quarantined(self, url: str, bank: str, code: str, message: str) -> None:
        """A followed hash feed was quarantined (services/feeds.py): its entries stay,
        nothing new is applied until the admin resumes it (issue 13: "the admin told")."""
        self.emit(
            "feed_quarantined",
            f"feed:{url}",
            "A hash feed was quarantined",
            f"The feed {url} was quarantined ({code}); nothing new from it is applied "
            f"until `warden feeds resume {url}`.",
            {"feed": url, "bank": bank, "code": code, "why": message[:200]},
        )

    def ban_action(self, *, by: str, user: str, reason: str = "") -> None:
        """An uploader was banned through Warden."""
        self.emit(
            "ban_action",
            "ban",
            "Uploader banned",
            f"{by} banned {user}.",
            {"by": by, "user": user, "reason": reason},
        )

    # -- dedup, rate limit, delivery ------------------------------------------------

    def emit(self, event: str, key: str, title: str, text: str, facts: dict[str, Any]) -> None:
        """Queue an alert unless one with the same key went out within repeat_after_s."""
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.settings.repeat_after_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            repeats = self._suppressed.pop(key, 0)
            clean = {k: v for k, v in facts.items() if v is not None}
            alert = Alert(event, key, title, text, clean, repeats)
            due = [c for c in self.channels if c.wants(event) and self._budget(c, now)]
        for channel in due:
            self._enqueue(channel, alert)

    def _budget(self, channel: Channel, now: float) -> bool:
        while channel.sent and channel.sent[0] <= now - 3600:
            channel.sent.popleft()
        if len(channel.sent) >= self.settings.max_per_hour:
            self.dropped += 1
            return False
        channel.sent.append(now)
        return True

    def _ensure_worker(
        self, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Queue[tuple[Channel, Alert]]:
        if self._queue is None:
            self._queue = asyncio.Queue(_QUEUE)
            self._worker = loop.create_task(self._deliver(), name="warden-alerts")
            self._loop = loop
        return self._queue

    def _enqueue(self, channel: Channel, alert: Alert) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: hand it to the loop the alerts run on
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._enqueue, channel, alert)
            else:
                log.warning("alert %s not sent: no event loop", alert.key)
            return
        self._ensure_worker(loop)
        assert self._queue is not None
        try:
            self._queue.put_nowait((channel, alert))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert %s dropped: %d waiting", alert.key, _QUEUE)

    async def _deliver(self) -> None:
        assert self._queue is not None
        while True:
            channel, alert = await self._queue.get()
            try:
                async with asyncio.timeout(self.settings.timeout_s):
                    await channel.notifier.send(alert)
            except TimeoutError:
                log.warning("alert %s to %s: timed out", alert.key, channel.notifier.name)
            except WardenError as exc:
                log.warning("alert %s not delivered: %s", alert.key, REDACTOR.redact(exc.message))
            except Exception as exc:
                log.warning(
                    "alert %s to %s failed: %s",
                    alert.key,
                    channel.notifier.name,
                    type(exc).__name__,
                )
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued alert was delivered (or failed)."""
        if self._queue is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.timeout_s):
                    await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.client is not None:
            await self.client.aclose()


def build_notifier(
    cfg: AlertChannelSettings, client: httpx.AsyncClient, timeout_s: float
) -> Notifier:
    """The channel for one `[[alerts.channels]]` table (ConfigError when incomplete)."""
    where = f"alerts.channels '{cfg.name}'"
    secret = read_secret(cfg.secret, cfg.secret_file, where)
    REDACTOR.add(secret, cfg.url if cfg.kind == "webhook_json" else None)
    if cfg.kind == "smtp":
        return SmtpMail(
            cfg.name,
            host=cfg.smtp_host,
            port=cfg.smtp_port,
            sender=cfg.mail_from,
            recipients=cfg.mail_to,
            user=cfg.smtp_user,
            password=secret,
            starttls=cfg.smtp_starttls,
            timeout_s=timeout_s,
        )
    if not cfg.url:
        raise ConfigError(f"{where}: {cfg.kind} needs a url")
    if cfg.kind == "webhook_json":
        return JsonWebhook(cfg.name, cfg.url, client)
    if secret is None:
        raise ConfigError(f"{where}: {cfg.kind} needs its secret (secret or secret_file)")
    if cfg.kind == "signed_webhook":
        return SignedWebhook(cfg.name, cfg.url, client, key=secret)
    if not cfg.room_id:
        raise ConfigError(f"{where}: matrix needs a room_id")
    return MatrixRoom(cfg.name, cfg.url, cfg.room_id, client, token=secret)


def _events(cfg: AlertChannelSettings) -> frozenset[str]:
    unknown = set(cfg.events) - set(EVENTS)
    if unknown:
        raise ConfigError(
            f"alerts.channels '{cfg.name}': unknown events {sorted(unknown)}; known: {EVENTS}"
        )
    return frozenset(cfg.events)


def scanner_fed_alert(
    settings: Settings, alerts: Alerts | None
) -> Callable[[Verdict, str], None] | None:
    """What the external scanners call after a hit fed the flag bank: a
    `flag_action` alert (None when no alert channel is configured)."""
    if alerts is None:
        return None

    def fed(verdict: Verdict, scanner: str) -> None:
        alerts.flag_action(
            by=f"scanner {scanner}",
            bank=settings.banks.flag_bank,
            hashes=1 + len(verdict.frames),
            label=f"media {verdict.sha256[:16]}",
        )

    return fed


def feed_quarantine_alert(alerts: Alerts | None) -> Callable[[str, str, str, str], None] | None:
    """What the feed service calls when it quarantines a feed: a `feed_quarantined`
    alert (None when no alert channel is configured)."""
    return alerts.feed_quarantined if alerts is not None else None


def build_alerts(settings: Settings, *, channels: Iterable[Channel] = ()) -> Alerts | None:
    """The alerts for these settings (plus `channels` given), or None when there are none."""
    a = settings.alerts
    extra = list(channels)
    if not a.channels and not extra:
        return None
    client: httpx.AsyncClient | None = None
    built: list[Channel] = []
    if a.channels:
        client = httpx.AsyncClient(follow_redirects=False, timeout=a.timeout_s)
        built = [
            Channel(build_notifier(cfg, client, a.timeout_s), _events(cfg)) for cfg in a.channels
        ]
    REDACTOR.install()
    return Alerts([*built, *extra], a, client=client)
