"""Assembly: the one place where settings become working objects.

`build_scanner` and `build_services` are what the CLI, the web app and the
tests call; nothing is built at import time. Tests pass their own settings
(database, model path) and so choose every collaborator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from warden.config import Settings
from warden.domain.policy import FailMode
from warden.domain.ports import HashMatcher
from warden.errors import ModelUnavailable
from warden.media.classify import Classifier, NudeNetClassifier
from warden.media.decode import DecodeLimits
from warden.media.pipeline import Scanner
from warden.membership.gate import AccessGate, RuleSource
from warden.membership.ratelimit import MemoryUsageCounter, UsageCounter
from warden.membership.rulebook import UploadsSwitch

if TYPE_CHECKING:
    from warden.adapters.lemmy import Identity

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
        fail_modes={
            "upload": policy.fail_mode_upload,
            "remote": policy.fail_mode_remote,
            "api": FailMode.CLOSED,
            "cli": FailMode.CLOSED,
            "rescan": FailMode.CLOSED,
        },
        matcher=matcher,
        classifier_error=error,
    )


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


@dataclass
class Services:
    """Everything a running Warden needs, built once and shared by all requests."""

    settings: Settings
    scanner: Scanner
    access: AccessGate | None = None  # account rules and rate limits (/authz)
    identity: Identity | None = None  # who is behind a Lemmy token (/authz)

    def reload_rules(self) -> None:
        """Re-read the rules file now (raises RuleFileError, keeping the rules in force)."""
        if self.access is not None:
            self.access.rules.reload()

    async def aclose(self) -> None:
        if self.identity is not None:
            await self.identity.lemmy.http.aclose()


def build_services(
    settings: Settings,
    *,
    scanner: Scanner | None = None,
    access: AccessGate | None = None,
    identity: Identity | None = None,
) -> Services:
    """Build the services for `warden serve` (tests pass their own parts)."""
    return Services(
        settings=settings,
        scanner=scanner or build_scanner(settings),
        access=access or build_access_gate(settings),
        identity=identity or build_identity(settings),
    )
