"""Assembly: the one place where settings become working objects.

`build_scanner` and `build_services` are what the CLI, the web app and the
tests call; nothing is built at import time. Tests pass their own settings
(database, model path) and so choose every collaborator.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warden.config import Settings, load_settings
from warden.domain.policy import FailMode
from warden.domain.ports import HashMatcher
from warden.errors import ModelUnavailable
from warden.media.classify import Classifier, NudeNetClassifier
from warden.media.decode import DecodeLimits
from warden.media.decoder_pool import Decoder, DecoderPool, InProcessDecoder
from warden.media.pipeline import Scanner
from warden.membership.gate import AccessGate, RuleSource
from warden.membership.ratelimit import MemoryUsageCounter, UsageCounter
from warden.membership.rulebook import UploadsSwitch

if TYPE_CHECKING:
    from warden.adapters.lemmy import Identity
    from warden.adapters.pictrs_proxy import IngestTracker, PictrsProxy
    from warden.domain.verdict import Verdict
    from warden.media.pipeline import Prepared
    from warden.store.banks import BankSync
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog
    from warden.store.invites import InviteStore
    from warden.store.quarantine import EvidenceStore
    from warden.store.tokens import TokenStore
    from warden.web.batcher import MicroBatcher
    from warden.web.gate import MediaGate
    from warden.web.metrics import Metrics

log = logging.getLogger(__name__)


def decode_limits(settings: Settings) -> DecodeLimits:
    m = settings.media
    return DecodeLimits(
        max_bytes=m.max_bytes,
        max_pixels=m.max_pixels,
        max_side=m.max_side,
        max_frames=m.max_frames,
        sample_frames=m.sample_frames,
        timeout_s=m.decode_timeout_s,
        scan_side=m.scan_side,
        max_scans=m.max_scans,
        max_scan_pixels=m.max_scan_pixels,
        max_decoded_pixels=m.max_decoded_pixels,
    )


def build_decoder(settings: Settings, workers: int | None = None) -> Decoder:
    """Where files are decoded: `workers` (default `server.scan_workers`) killable
    processes with memory and CPU limits, or the calling thread when
    `media.isolation = "thread"`. Processes start on first use or `Scanner.start`."""
    if settings.media.isolation == "thread":
        return InProcessDecoder()
    return DecoderPool(
        workers or settings.server.scan_workers, memory_mb=settings.media.decoder_memory_mb
    )


def build_classifier(settings: Settings) -> Classifier:
    """The configured classifier, loaded and run once (raises ModelUnavailable)."""
    m = settings.model
    model_path = m.path
    if m.precision == "int8":
        from warden.media.quantize import quantized_model

        model_path = quantized_model(m.path, settings.data_dir, m.calibration_dir)
    classifier = NudeNetClassifier(
        model_path,
        providers=m.providers,
        threads=m.threads,
        batch_size=m.batch_size,
        min_score=m.min_score,
    )
    classifier.warm_up()
    return classifier


def build_scanner(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    matcher: HashMatcher | None = None,
    require_model: bool = False,
    decode_workers: int | None = None,
) -> Scanner:
    """A scanner for these settings.

    Without `require_model`, a model that cannot load leaves the scanner
    without a classifier: every scan then answers with its source's failure
    mode and the reason `model_unavailable`, which is what fail-closed means.
    """
    error: str | None = None
    if classifier is None:
        try:
            classifier = build_classifier(settings)
        except ModelUnavailable as exc:
            if require_model:
                raise
            log.error("classifier unavailable: %s", exc)
            error = exc.message
    policy = settings.policy
    return Scanner(
        limits=decode_limits(settings),
        policy=policy.label_policy(),
        classifier=classifier,
        fail_modes=fail_modes(settings),
        matcher=matcher,
        classifier_error=error,
        decoder=build_decoder(settings, decode_workers),
    )


def fail_modes(settings: Settings) -> dict[str, FailMode]:
    """The failure mode per source. `remote_media = "allow"` opens remote fetches; an
    ingest the proxy cannot attribute (`ingest`) gets the stricter of upload and remote."""
    upload = settings.policy.fail_mode_upload
    remote = (
        FailMode.OPEN
        if settings.federated.remote_media == "allow"
        else settings.policy.fail_mode_remote
    )
    both_open = upload is FailMode.OPEN and remote is FailMode.OPEN
    return {
        "upload": upload,
        "remote": remote,
        "ingest": FailMode.OPEN if both_open else FailMode.CLOSED,
        "api": FailMode.CLOSED,
        "cli": FailMode.CLOSED,
        "rescan": FailMode.CLOSED,
    }


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
    from warden.adapters.lemmy import Identity, build_lemmy

    lemmy = build_lemmy(settings.lemmy.url, settings.lemmy.api, timeout_s=settings.lemmy.timeout_s)
    return Identity(lemmy, ttl_s=settings.lemmy.identity_ttl_s)


def config_version(settings: Settings) -> str:
    """A short digest of the settings that decide outcomes (policy, model cut-off)."""
    effective = settings.policy.model_dump_json() + f"|min_score={settings.model.min_score}"
    return hashlib.sha256(effective.encode()).hexdigest()[:16]


def build_evidence_store(settings: Settings, *, force: bool = False) -> EvidenceStore | None:
    """The evidence store when preservation is on (or `force`); ConfigError on a bad key."""
    from warden.store.quarantine import open_evidence_store

    ev = settings.evidence
    if not ev.enabled and not force:
        return None
    key = ev.key.get_secret_value() if ev.key is not None else None
    return open_evidence_store(settings.data_dir, key, ev.retention_days)


@dataclass
class Services:
    """Everything a running Warden needs, built once and shared by all requests."""

    settings: Settings
    scanner: Scanner
    access: AccessGate | None = None  # account rules and rate limits (/authz)
    identity: Identity | None = None  # who is behind a Lemmy token (/authz)
    database: Database | None = None  # decisions and tokens
    decisions: DecisionLog | None = None
    tokens: TokenStore | None = None
    evidence: EvidenceStore | None = None  # None when preservation is off
    metrics: Metrics | None = None
    batcher: MicroBatcher[Prepared, Verdict] | None = None
    gate: MediaGate | None = None  # the media gate (/pictrs/validate, /api/v1/scan)
    banks: BankSync | None = None  # keeps the scanner's bank matcher in step with the tables
    pictrs_proxy: PictrsProxy | None = None  # Lemmy -> pict-rs, through /pictrs-proxy
    ingest: IngestTracker | None = None  # which kind of ingest pict-rs is running
    invites: InviteStore | None = None  # the invite ledger, when invites are enabled
    invite_sessions: Any = None  # /invites sign-ins (web/public_page.Sessions), in memory
    config_path: Path | None = None  # where reload() reads settings again

    def reload_rules(self) -> None:
        """Re-read the rules file now (raises RuleFileError, keeping the rules in force)."""
        if self.access is not None:
            self.access.rules.reload()

    def reload(self) -> str:
        """Re-read settings from the same source and swap thresholds, failure modes and
        rules in place; returns the new config version (ConfigError keeps the old one)."""
        new = load_settings(self.config_path)
        self.scanner.policy = new.policy.label_policy()
        self.scanner.fail_modes.update(fail_modes(new))
        version = config_version(new)
        if self.gate is not None:
            self.gate.config_version = version
            self.gate.deadline_s = new.server.deadline_ms / 1000
        self.settings = new
        self.reload_rules()
        log.warning("settings reloaded from %s: config version %s", self.config_path, version)
        return version

    async def aclose(self) -> None:
        if self.gate is not None:
            await self.gate.close()
        if self.pictrs_proxy is not None:
            await self.pictrs_proxy.aclose()
        if self.identity is not None:
            await self.identity.lemmy.http.aclose()
        if self.database is not None:
            self.database.dispose()


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
    from warden.adapters.pictrs_proxy import IngestTracker, PictrsProxy
    from warden.media.matcher import BankMatcher
    from warden.store.banks import BankStore, BankSync
    from warden.store.database import Database
    from warden.store.decisions import DecisionLog
    from warden.store.invites import InviteStore
    from warden.store.tokens import TokenStore
    from warden.web.batcher import MicroBatcher
    from warden.web.gate import MediaGate
    from warden.web.metrics import Metrics

    matcher = BankMatcher()
    scanner = scanner or build_scanner(settings, matcher=matcher)
    if scanner.matcher is None:
        scanner.matcher = matcher
    database = database or Database(settings.database_url)
    banks = (
        BankSync(BankStore(database), scanner.matcher)
        if isinstance(scanner.matcher, BankMatcher)
        else None
    )
    decisions = DecisionLog(database)
    evidence = build_evidence_store(settings)
    metrics = Metrics()
    batcher: MicroBatcher[Prepared, Verdict] = MicroBatcher(
        scanner.finish,
        window_s=settings.server.batch_window_ms / 1000,
        max_batch=settings.model.batch_size,
        on_depth=metrics.set_depth,
    )
    gate = MediaGate(
        scanner,
        batcher=batcher,
        decisions=decisions,
        evidence=evidence,
        metrics=metrics,
        deadline_s=settings.server.deadline_ms / 1000,
        scan_workers=settings.server.scan_workers,
        config_version=config_version(settings),
    )
    invites = InviteStore(database, settings.invites.policy()) if settings.invites.enabled else None
    return Services(
        settings=settings,
        scanner=scanner,
        access=access or build_access_gate(settings),
        identity=identity or build_identity(settings),
        invites=invites,
        database=database,
        decisions=decisions,
        tokens=TokenStore(database),
        evidence=evidence,
        metrics=metrics,
        batcher=batcher,
        gate=gate,
        banks=banks,
        pictrs_proxy=PictrsProxy(settings.pictrs.url, timeout_s=settings.pictrs.timeout_s),
        ingest=IngestTracker(),
        config_path=config_path,
    )
