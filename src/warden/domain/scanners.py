"""External scanners in the domain: their verdicts, when they run, and how they combine.

An admin may ask services Warden does not run (PhotoDNA, Hive, a fedi-safety GPU
box, anything speaking JSON over HTTP) for a second opinion. Whatever they answer
is reduced here to an `ExternalVerdict`, and `combine` merges those with the
decision the model and the hash banks already reached, by one table:

    any reject rejects · a review escalates an accept · an accept changes nothing
    a scanner that gave no verdict: closed → reject, open → as if it accepted
    (the failure is recorded), skip → ignored (recorded, no effect)

Pure values and functions: no HTTP, no settings object, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from warden.domain.verdict import Decision, Reason, worst


class ScannerFailMode(StrEnum):
    """What a scanner's failure (down, throttled, timeout, unreadable answer) means."""

    CLOSED = "closed"  # refuse the media: nothing unscanned gets in
    OPEN = "open"  # let the other verdicts decide, and say on the decision that it failed
    SKIP = "skip"  # as open, for scanners that are a bonus (never a reason to refuse)


class RunOn(StrEnum):
    """Which media a scanner is asked about, by where it came from."""

    ALL = "all"
    UPLOAD = "upload"  # local uploads (and the API and CLI, which are local too)
    REMOTE = "remote"  # media pict-rs fetches for federation


#: Sources (media/pipeline.SOURCES) that count as remote; the proxy's `ingest`
#: (upload or remote, not known which) counts as both, so either rule runs.
_REMOTE = frozenset({"remote", "ingest"})
_LOCAL = frozenset({"upload", "ingest", "api", "cli", "rescan"})


@dataclass(frozen=True)
class ScanTrigger:
    """When one scanner runs; all conditions must hold.

    `only_review` asks it only about media the model and banks sent to review
    (an expensive or rate-limited service as a tie-breaker); `min_bytes` skips
    small files (icons, avatars).
    """

    run_on: RunOn = RunOn.ALL
    only_review: bool = False
    min_bytes: int = 0

    def applies(self, source: str, size: int, decision: Decision) -> bool:
        """Whether to ask this scanner about media from `source` of `size` bytes
        that the model and banks judged `decision` (a reject is never re-asked:
        nothing a scanner says can make it less refused)."""
        if decision is Decision.REJECT:
            return False
        if self.only_review and decision is not Decision.REVIEW:
            return False
        if size < self.min_bytes:
            return False
        if self.run_on is RunOn.REMOTE:
            return source in _REMOTE
        if self.run_on is RunOn.UPLOAD:
            return source in _LOCAL
        return True


@dataclass(frozen=True)
class ExternalVerdict:
    """What one external scanner said about one file (or that it said nothing).

    `labels` are the scanner's own words, raw (a Hive class and score, a
    PhotoDNA match source, a JSON field), kept for the decisions log. `decision`
    is None when the scanner failed; `error_code` then says how
    (errors.ScannerError codes) and `fail_mode` what that means.
    """

    scanner: str
    kind: str
    decision: Decision | None
    latency_ms: float
    labels: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fail_mode: ScannerFailMode = ScannerFailMode.CLOSED
    error_code: str | None = None
    error: str | None = None
    csam: bool = False  # a known-CSAM hash-list match: handled as a CSAM-bank match

    @property
    def failed(self) -> bool:
        return self.decision is None

    @property
    def effect(self) -> Decision:
        """The decision this verdict stands for in the combination table."""
        if self.decision is not None:
            return self.decision
        return Decision.REJECT if self.fail_mode is ScannerFailMode.CLOSED else Decision.ACCEPT

    def detail(self) -> dict[str, Any]:
        """What the decisions log keeps: scanner, answer, raw labels, latency."""
        out: dict[str, Any] = {
            "scanner": self.scanner,
            "kind": self.kind,
            "decision": self.decision.value if self.decision else None,
            "labels": dict(self.labels),
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.failed:
            out.update(fail_mode=self.fail_mode.value, error=self.error_code)
        if self.csam:  # the key web/disclosure.py and the console read, as for banks
            out["csam"] = True
        return out

    def reason(self) -> Reason:
        """The verdict as a reason on the decision (one per scanner asked)."""
        name = f"scanner '{self.scanner}'"
        if self.decision is Decision.REJECT:
            return Reason("scanner_reject", f"{name} refused it", self.detail())
        if self.decision is Decision.REVIEW:
            return Reason("scanner_review", f"{name} sent it to review", self.detail())
        if self.decision is Decision.ACCEPT:
            return Reason("scanner_clear", f"{name} found nothing", self.detail())
        what = {
            ScannerFailMode.CLOSED: "refused (failing closed)",
            ScannerFailMode.OPEN: "decided without it (failing open)",
            ScannerFailMode.SKIP: "decided without it (skipped)",
        }[self.fail_mode]
        return Reason(
            "scanner_unavailable",
            f"{name} gave no verdict ({self.error_code}: {self.error}): {what}",
            self.detail(),
        )


@dataclass(frozen=True)
class Combined:
    """The decision after the external verdicts, and the reasons to record in order."""

    decision: Decision
    reasons: tuple[Reason, ...]


def combine(
    decision: Decision, reasons: Iterable[Reason], externals: Iterable[ExternalVerdict]
) -> Combined:
    """Merge external verdicts into the model's and banks' `decision`.

    The table: the result is the worst of the base decision and every external
    verdict's effect (reject > review > accept; a failure counts as reject when
    closed, as accept when open or skipped). Reasons keep their order, except
    that when an external verdict made the decision worse, the reasons that
    decided it come first: callers (pict-rs's answer, metrics) read the first
    reason as *the* reason.
    """
    base = tuple(reasons)
    ext = tuple(externals)
    final = worst([decision, *(e.effect for e in ext)])
    if final.severity == decision.severity:
        return Combined(final, (*base, *(e.reason() for e in ext)))
    deciding = tuple(e.reason() for e in ext if e.effect is final)
    rest = tuple(e.reason() for e in ext if e.effect is not final)
    return Combined(final, (*deciding, *base, *rest))


def hit(verdict: ExternalVerdict) -> bool:
    """A scanner's own reject (not a failure): what may feed the flag bank."""
    return verdict.decision is Decision.REJECT
