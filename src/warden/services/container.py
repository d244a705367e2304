"""`Services`: everything a running Warden holds, built once, started and closed as one.

A required core (the scanner and the media gate, the database and its logs,
the edge's rules and identity, the ingest proxy) and optional feature groups
that are `None` when switched off (`invites`), so a caller that needs a
feature asks for it once (web/deps.py answers 404 when it is off) instead of
asserting on every attribute. `start()` and `aclose()` are the whole lifecycle:
the web app's lifespan calls nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from warden.adapters.lemmy import Identity
from warden.adapters.pictrs_proxy import IngestTracker, PictrsProxy
from warden.config import Settings, load_settings
from warden.domain.verdict import Verdict
from warden.media.pipeline import Prepared, Scanner
from warden.membership.gate import AccessGate
from warden.services.alerting import Alerting, build_alerting, retire
from warden.services.alerts import Alerts, feed_quarantine_alert
from warden.services.bank_sync import BankSync, follow_banks
from warden.services.batcher import MicroBatcher
from warden.services.console import ConsoleFeature
from warden.services.external_scan import ExternalScans
from warden.services.feeds import FeedService
from warden.services.gate import MediaGate
from warden.services.invites import InvitesFeature
from warden.services.metrics import Metrics
from warden.services.scanning import config_version, fail_modes
from warden.services.uploads import UploadScreen
from warden.store.database import Database
from warden.store.decisions import DecisionLog
from warden.store.quarantine import EvidenceStore
from warden.store.tokens import TokenStore

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a running Warden needs, built once and shared by all requests."""

    settings: Settings
    scanner: Scanner
    database: Database  # decisions, tokens, banks, invites
    decisions: DecisionLog
    tokens: TokenStore
    metrics: Metrics
    batcher: MicroBatcher[Prepared, Verdict]
    gate: MediaGate  # the media gate (/pictrs/validate, /api/v1/scan)
    access: AccessGate  # account rules and rate limits (/authz)
    identity: Identity  # who is behind a Lemmy token (/authz, /invites)
    pictrs_proxy: PictrsProxy  # Lemmy -> pict-rs, through /pictrs-proxy
    ingest: IngestTracker  # which kind of ingest pict-rs is running
    evidence: EvidenceStore | None = None  # None when preservation is off
    banks: BankSync | None = None  # keeps the scanner's bank matcher in step with the tables
    invites: InvitesFeature | None = None  # None unless invites.enabled
    console: ConsoleFeature | None = None  # None unless console.enabled
    feeds: FeedService | None = None  # hash feeds (docs/feeds.md); None unless feeds.enabled
    external: ExternalScans | None = None  # external scanners; None unless configured
    alerts: Alerts | None = None  # alert channels; None unless configured
    config_path: Path | None = None  # where reload() reads settings again
    _stop: asyncio.Event | None = field(default=None, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @property
    def uploads(self) -> UploadScreen:
        """Uploads scanned and attributed in the ingest proxy (services/uploads.py):
        a view over the gate, identity and tracker, so nothing to build or close."""
        return UploadScreen(
            self.gate,
            self.identity,
            self.ingest,
            self.decisions,
            deadline_s=self.settings.server.hook_deadline_s("upload"),
        )

    async def start(self) -> None:
        """Start what runs in the background, in the order requests need it: the
        micro-batcher, the decoder processes (warm before the first request), the
        hash banks (loaded BEFORE the first request: until then nobody is answered,
        and pict-rs refuses the upload, rather than answered unmatched) and their
        follower, and the invite worker."""
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()  # a reload from a thread hands work back here
        self.batcher.start()
        if self.alerts is not None:  # events from worker threads need the loop now
            self.alerts.start()
        await asyncio.to_thread(self.scanner.start)
        if self.banks is not None:
            await asyncio.to_thread(self.banks.load)
            self._spawn(follow_banks(self.banks, self.settings, self._stop), "warden-banks")
        if self.console is not None:  # the uploads switch the console set, before /authz
            await asyncio.to_thread(self.console.restore)
        if self.invites is not None:
            if self.invites.worker is None:
                log.error(
                    "invites.enabled but lemmy.bot_token is not set: no application worker runs"
                )
            else:
                self._spawn(self.invites.worker.run_forever(self._stop), "warden-invites")
        if self.feeds is not None:  # publish and follow; never in the way of a decision
            self._spawn(self.feeds.run(self._stop), "warden-feeds")

    def _spawn(self, work: object, name: str) -> None:
        assert asyncio.iscoroutine(work)
        self._tasks.append(asyncio.create_task(work, name=name))

    async def aclose(self) -> None:
        """Stop the background work (between steps, never in one), then close
        everything that holds a thread, a process, a connection or a socket.
        Safe to call twice."""
        if self._stop is not None:
            self._stop.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await task
        if self.feeds is not None:
            await self.feeds.aclose()
        await self.gate.close()
        if self.external is not None:
            await self.external.aclose()
        if self.alerts is not None:
            await self.alerts.aclose()
        await self.pictrs_proxy.aclose()
        await self.identity.lemmy.http.aclose()
        self.database.dispose()

    def reload_rules(self) -> None:
        """Re-read the rules file now (raises RuleFileError, keeping the rules in force)."""
        self.access.rules.reload()

    def reload(self) -> str:
        """Re-read settings from the same source and swap thresholds, failure modes,
        rules, external scanners and alert channels in place; returns the new config
        version (ConfigError keeps the old settings, all of them).

        Everything else (listeners, database, model, decode limits, evidence, banks,
        feeds, invites, console) takes effect at the next restart: the log says so."""
        new = load_settings(self.config_path)
        rebuilt = self._rebuild_alerting(new)
        self.scanner.policy = new.policy.label_policy()
        self.scanner.fail_modes.update(fail_modes(new))
        version = config_version(new)
        self.gate.config_version = version
        self.gate.deadline_s = new.server.deadline_ms / 1000
        self.gate.refusal_pace_s = new.server.refusal_pace_ms / 1000
        self.settings = new
        self.reload_rules()
        self._swap_alerting(rebuilt)
        log.warning(
            "settings reloaded from %s: config version %s; thresholds, failure modes, rules, "
            "external scanners (%d) and alert channels (%d) are in force now; listener, "
            "database, model, media, evidence, bank, feed, invite and console settings "
            "need a restart",
            self.config_path,
            version,
            len(rebuilt.external.scanners) if rebuilt.external else 0,
            len(rebuilt.alerts.channels) if rebuilt.alerts else 0,
        )
        return version

    def _rebuild_alerting(self, new: Settings) -> Alerting:
        """New scanners and alerts for `new` (secret files read again), carrying over
        links in flight, dedup and back-off; ConfigError before anything is swapped."""
        return build_alerting(new, self.database, previous=Alerting(self.external, self.alerts))

    def _swap_alerting(self, rebuilt: Alerting) -> None:
        """Put the rebuilt scanners and alerts in force (the gate reads them per file),
        and retire the old ones once what is in flight through them is done."""
        old = Alerting(self.external, self.alerts)
        self.external = self.gate.external = rebuilt.external
        self.alerts = self.gate.alerts = rebuilt.alerts
        if self.feeds is not None:
            self.feeds.on_quarantine = feed_quarantine_alert(rebuilt.alerts)
        if self.console is not None:
            self.console.service.chain.alerts = rebuilt.alerts
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # a thread (POST /api/v1/admin/reload) or no loop at all
            running = None
        if running is not None:
            self._retire(old)
        elif self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._retire, old)
        elif old.external is not None or old.alerts is not None:
            asyncio.run(old.aclose())  # never started: nothing is in flight through them

    def _retire(self, old: Alerting) -> None:
        """In the event loop: start the new alerts' delivery, and close the old
        clients once what is in flight through them is done."""
        if self.alerts is not None:
            self.alerts.start()
        if old.external is not None or old.alerts is not None:
            self._spawn(retire(old, self._stop or asyncio.Event()), "warden-retire")
