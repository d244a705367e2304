"""Assembly: the one place where settings become a running Warden's `Services`.

`build_services` is what `warden serve`, the web app and the tests call;
nothing is built at import time. Tests pass their own parts (scanner,
database, rules, identity) and so choose every collaborator. The scanner's
own parts are built in services/scanning.py, the single objects (database,
Lemmy client, stores) in services/factories.py.
"""

from __future__ import annotations

from pathlib import Path

from warden.adapters.lemmy import Identity
from warden.adapters.pictrs_proxy import IngestTracker, PictrsProxy
from warden.config import Settings
from warden.domain.verdict import Verdict
from warden.jobs.invites import InviteWorker
from warden.media.keypoint_stage import KeypointStage
from warden.media.matcher import BankMatcher
from warden.media.pipeline import Prepared, Scanner
from warden.membership.gate import AccessGate, RuleSource
from warden.membership.ratelimit import MemoryUsageCounter, UsageCounter
from warden.membership.rulebook import UploadsSwitch
from warden.services.alerting import build_alerting
from warden.services.alerts import feed_quarantine_alert
from warden.services.bank_sync import bank_sync
from warden.services.batcher import MicroBatcher
from warden.services.console_assembly import build_console
from warden.services.container import Services
from warden.services.factories import bank_store, invite_store, lemmy_client, open_database
from warden.services.feeds import build_feed_service
from warden.services.gate import MediaGate
from warden.services.invites import InviteService, InvitesFeature
from warden.services.keypoint_sync import KeypointSync
from warden.services.metrics import Metrics
from warden.services.recorder import DecisionRecorder
from warden.services.scanning import build_scanner, config_version, fail_modes
from warden.services.signins import Sessions
from warden.store.database import Database
from warden.store.decisions import DecisionLog
from warden.store.feeds import FeedStore
from warden.store.keypoint_features import KeypointFeatureStore
from warden.store.quarantine import EvidenceStore, open_evidence_store
from warden.store.tokens import TokenStore


def build_access_gate(settings: Settings, *, usage: UsageCounter | None = None) -> AccessGate:
    """The rules in force and the usage counter (in memory unless one is given:
    several replicas need a shared, database-backed counter)."""
    r = settings.rules
    source = RuleSource(
        r.file,
        uploads_override=UploadsSwitch(r.uploads) if r.uploads else None,
        check_every_s=r.reload_interval_s,
    )
    return AccessGate(source, usage or MemoryUsageCounter())


def build_identity(settings: Settings) -> Identity:
    """Token → user facts through the configured Lemmy, cached briefly."""
    return Identity(lemmy_client(settings), ttl_s=settings.lemmy.identity_ttl_s)


def build_evidence_store(settings: Settings, *, force: bool = False) -> EvidenceStore | None:
    """The evidence store when preservation is on (or `force`); ConfigError on a bad key."""
    ev = settings.evidence
    if not ev.enabled and not force:
        return None
    key = ev.key.get_secret_value() if ev.key is not None else None
    return open_evidence_store(settings.data_dir, key, ev.retention_days)


def build_recorder(
    settings: Settings,
    database: Database,
    evidence: EvidenceStore | None,
    *,
    scanner: Scanner | None = None,
    metrics: Metrics | None = None,
) -> DecisionRecorder:
    """The one decision recorder (services/recorder.py); with a scanner it follows the
    scanner's failure modes, which a reload updates in place."""
    modes = scanner.fail_modes if scanner is not None else fail_modes(settings)
    return DecisionRecorder(
        DecisionLog(database),
        evidence,
        fail_modes=modes,
        config_version=config_version(settings),
        metrics=metrics,
    )


def build_invites(settings: Settings, database: Database, identity: Identity) -> InvitesFeature:
    """The invite feature: ledger, service, page sign-ins, and the worker when a bot
    token is set."""
    store = invite_store(settings, database)
    token = settings.lemmy.bot_token
    worker = (
        InviteWorker(store, identity.lemmy, token.get_secret_value(), settings.invites)
        if token is not None
        else None
    )
    return InvitesFeature(
        store=store,
        service=InviteService(store, identity.lemmy),
        sessions=Sessions(settings.invites),
        worker=worker,
    )


def keypoint_sync(database: Database, stage: KeypointStage | None) -> KeypointSync | None:
    """The follower of the held pictures' features for this stage (None without one)."""
    if stage is None:
        return None
    return KeypointSync(KeypointFeatureStore(database), bank_store(database), stage)


def build_services(
    settings: Settings,
    *,
    scanner: Scanner | None = None,
    access: AccessGate | None = None,
    identity: Identity | None = None,
    database: Database | None = None,
    config_path: Path | None = None,
) -> Services:
    """Build the services for `warden serve` (tests pass their own parts).

    The database is not migrated here: `warden serve` runs `upgrade()` first.
    """
    matcher = BankMatcher()
    # the held pictures' keypoint stage (issue 16): loaded and followed with the banks
    keypoints = KeypointStage() if settings.banks.keypoints else None
    scanner = scanner or build_scanner(settings, matcher=matcher, keypoints=keypoints)
    if scanner.matcher is None:
        scanner.matcher = matcher
    if scanner.keypoints is None:
        scanner.keypoints = keypoints
    database = database or open_database(settings)
    banks = (
        bank_sync(
            settings,
            bank_store(database),
            scanner.matcher,
            keypoints=keypoint_sync(database, scanner.keypoints),
        )
        if isinstance(scanner.matcher, BankMatcher)
        else None
    )
    evidence = build_evidence_store(settings)
    metrics = Metrics()
    batcher: MicroBatcher[Prepared, Verdict] = MicroBatcher(
        scanner.finish,
        window_s=settings.server.batch_window_ms / 1000,
        max_batch=settings.model.batch_size,
        on_depth=metrics.set_depth,
    )
    recorder = build_recorder(settings, database, evidence, scanner=scanner, metrics=metrics)
    alerting = build_alerting(settings, database)  # external scanners and alerts
    external, alerts = alerting.external, alerting.alerts
    gate = MediaGate(
        scanner,
        batcher=batcher,
        recorder=recorder,
        metrics=metrics,
        deadline_s=settings.server.deadline_ms / 1000,
        scan_workers=settings.server.scan_workers,
        external=external,
        alerts=alerts,
        refusal_pace_s=settings.server.refusal_pace_ms / 1000,
    )
    identity = identity or build_identity(settings)
    invites = build_invites(settings, database, identity) if settings.invites.enabled else None
    feeds = (
        build_feed_service(
            settings,
            FeedStore(database),
            bank_store(database),
            # a pushed batch bites at once, not at the next `banks.refresh_s`
            on_bank_change=banks.refresh if banks is not None else None,
            on_quarantine=feed_quarantine_alert(alerts),
        )
        if settings.feeds.enabled
        else None
    )
    access = access or build_access_gate(settings)
    console = (
        build_console(
            settings,
            database,
            evidence=evidence,
            lemmy=identity.lemmy,
            rules=access.rules,
            matcher=scanner.matcher,
            # a flag or an approval bites in this process at once, not at the next refresh
            refresh_banks=banks.refresh if banks is not None else lambda: None,
            alerts=alerts,
        )
        if settings.console.enabled
        else None
    )
    assert recorder.decisions is not None
    return Services(
        settings=settings,
        scanner=scanner,
        database=database,
        decisions=recorder.decisions,
        tokens=TokenStore(database),
        metrics=metrics,
        batcher=batcher,
        gate=gate,
        external=external,
        alerts=alerts,
        access=access,
        identity=identity,
        pictrs_proxy=PictrsProxy(settings.pictrs.url, timeout_s=settings.pictrs.timeout_s),
        ingest=IngestTracker(),
        evidence=evidence,
        banks=banks,
        invites=invites,
        feeds=feeds,
        console=console,
        config_path=config_path,
    )
