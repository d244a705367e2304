"""The console's Now page as data: what is happening, in the numbers an admin
looks at first during a flood.

Decisions per minute by outcome and by source over the last `console.hours`
hours (the web layer draws them), the top refusal reasons, the latest
refusals, the uploads switch in force, bank sizes, the evidence count, and
whether pict-rs, Lemmy and Warden are wired right (`warden doctor`'s checks
that need no file: Lemmy's site settings and Warden's own settings; they
call Lemmy, so they are cached for a few minutes).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from warden.adapters.pictrs import PictrsAdmin
from warden.config import Settings
from warden.errors import WardenError
from warden.jobs.doctor import check_lemmy_site, check_warden, fetch_site
from warden.jobs.findings import INFO, OK, PROBLEM, Finding
from warden.store.banks import BankStore
from warden.store.console import ConsoleStore
from warden.store.decisions import DecisionLog, DecisionRecord
from warden.store.quarantine import EvidenceStore

OUTCOMES = ("accept", "review", "reject")
FINDINGS_TTL_S = 300.0
BANKS_TTL_S = 60.0


@dataclass
class NowView:
    """Everything the Now page shows."""

    since: datetime
    minutes: int
    by_outcome: dict[str, list[int]]  # outcome -> count per minute, oldest first
    by_source: dict[str, list[int]]
    totals: dict[str, int]
    top_reasons: list[tuple[str, int]]
    recent_refusals: list[DecisionRecord]
    uploads: str
    uploads_from_console: bool
    banks: list[tuple[str, str, bool, int]]  # name, action, csam, entries
    evidence_count: int | None
    findings: list[Finding] = field(default_factory=list)


class NowReader:
    """Reads the Now page's numbers (blocking: call from a thread)."""

    def __init__(
        self,
        settings: Settings,
        store: ConsoleStore,
        decisions: DecisionLog,
        banks: BankStore,
        evidence: EvidenceStore | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.decisions = decisions
        self.banks = banks
        self.evidence = evidence
        self._findings: tuple[float, list[Finding]] | None = None
        self._banks: tuple[float, list[tuple[str, str, bool, int]]] | None = None

    def bank_sizes(self) -> list[tuple[str, str, bool, int]]:
        """(name, action, csam, live entries) per bank, counted at most once a minute: a
        count reads the whole entries table (seconds at millions of rows)."""
        cached = self._banks
        if cached is not None and time.monotonic() - cached[0] < BANKS_TTL_S:
            return cached[1]
        sizes = [(b.name, b.action.value, b.csam, n) for b, n in self.banks.banks()]
        self._banks = (time.monotonic(), sizes)
        return sizes

    def findings(self) -> list[Finding]:
        """Doctor's checks that need no pict-rs file or nginx address, cached."""
        cached = self._findings
        if cached is not None and time.monotonic() - cached[0] < FINDINGS_TTL_S:
            return cached[1]
        site = fetch_site(self.settings)
        found = [site] if isinstance(site, Finding) else check_lemmy_site(*site, self.settings)
        found += check_warden(self.settings)
        found.append(self._pictrs_api())
        found.append(
            Finding(
                "pict-rs and nginx",
                INFO,
                "pict-rs's own settings and nginx's auth_request are checked by "
                "`warden doctor --pictrs-config FILE --nginx URL`; here, a hook that is "
                "wired shows as decisions from source `upload` in the chart",
            )
        )
        self._findings = (time.monotonic(), found)
        return found

    def _pictrs_api(self) -> Finding:
        """Whether pict-rs's internal API answers Warden's key (purges need it)."""
        key = self.settings.pictrs.api_key
        if key is None:
            return Finding(
                "pict-rs internal API",
                PROBLEM,
                "pictrs.api_key is not set: flag cannot purge copies, rescans cannot list",
                "set pictrs.api_key to pict-rs's server.api_key",
            )
        try:
            with PictrsAdmin(self.settings.pictrs.url, key.get_secret_value(), timeout_s=3) as api:
                api.aliases("warden-console-probe")
        except WardenError as exc:
            return Finding(
                "pict-rs internal API", PROBLEM, exc.message, "check pictrs.url and api_key"
            )
        return Finding("pict-rs internal API", OK, "answers with Warden's key")

    def read(self, uploads: str, from_console: bool, now: datetime | None = None) -> NowView:
        now = now or datetime.now(UTC)
        minutes = self.settings.console.hours * 60
        since = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
        by_outcome = {o: [0] * minutes for o in OUTCOMES}
        by_source: dict[str, list[int]] = {}
        totals: Counter[str] = Counter()
        for c in self.store.decision_counts(since):
            slot = min(minutes - 1, max(0, int((c.minute - since).total_seconds() // 60)))
            by_outcome.setdefault(c.decision, [0] * minutes)[slot] += c.count
            by_source.setdefault(c.source, [0] * minutes)[slot] += c.count
            totals[c.decision] += c.count
        recent = [
            r for r in self.decisions.recent(since=since, limit=200) if r.verdict.decision.refused
        ]
        evidence_count = len(self.evidence.ids()) if self.evidence is not None else None
        return NowView(
            since=since,
            minutes=minutes,
            by_outcome=by_outcome,
            by_source=dict(sorted(by_source.items())),
            totals=dict(totals),
            top_reasons=self.store.top_reasons(since),
            recent_refusals=recent[:15],
            uploads=uploads,
            uploads_from_console=from_console,
            banks=self.bank_sizes(),
            evidence_count=evidence_count,
            findings=self.findings(),
        )
