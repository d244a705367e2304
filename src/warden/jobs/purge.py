"""`warden purge federated`: remove every image that federated in, never a local upload.

Plan: every pict-rs alias on this instance that Lemmy's content references,
minus Lemmy's `local_image` (local uploads). Run: for each planned alias,
check again that it is not a local upload, mark it pending, purge it through
pict-rs's internal API, mark it done — rate-limited, with a Rich progress bar,
resumable from the ledger after a crash or Ctrl-C (see `PurgeLedger`).

Trade-off: images pict-rs holds that nothing in Lemmy references any more
are not found this way (pict-rs 0.5 has no "list everything" call); they are
unreachable from the instance's pages, and `warden rescan` of the store finds
them by content instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from warden.adapters.lemmy_db import LemmyDatabase
from warden.adapters.pictrs import PictrsAdmin, PictrsError
from warden.store.purge_ledger import PurgeLedger


@dataclass
class PurgePlan:
    candidates: int
    local_skipped: int
    new: int


@dataclass
class PurgeReport:
    purged: int = 0
    already_gone: int = 0
    skipped_local: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def plan_purge(lemmy: LemmyDatabase, ledger: PurgeLedger, local_hosts: list[str]) -> PurgePlan:
    """Record every federated alias in the ledger (idempotent: re-planning adds only new ones)."""
    local = lemmy.local_aliases()
    seen: dict[str, str] = {}
    skipped: set[str] = set()
    for ref in lemmy.references(local_hosts):
        if ref.alias in local:
            skipped.add(ref.alias)
            continue
        seen.setdefault(ref.alias, f"{ref.table}.{ref.column}")
    new = ledger.plan(seen.items())
    return PurgePlan(candidates=len(seen), local_skipped=len(skipped), new=new)


class RateLimiter:
    """At most `per_second` calls a second (0 = unlimited), with an injectable clock."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = clock()

    def wait(self) -> None:
        if not self._interval:
            return
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
        self._next = max(now, self._next) + self._interval


def run_purge(
    lemmy: LemmyDatabase,
    pictrs: PictrsAdmin,
    ledger: PurgeLedger,
    *,
    rate: float,
    on_step: Callable[[str, str], None] = lambda alias, result: None,
    max_errors: int = 20,
) -> PurgeReport:
    """Purge every planned or interrupted alias in the ledger."""
    report = PurgeReport()
    limiter = RateLimiter(rate)
    for alias, state in ledger.todo():
        if lemmy.is_local(alias):  # by construction: never a local upload, even one made mid-run
            ledger.mark(alias, "skipped", "local upload")
            report.skipped_local += 1
            on_step(alias, "skipped")
            continue
        try:
            if state == "pending" and not pictrs.exists(alias):
                ledger.mark(alias, "done", "already gone (finished before an interruption)")
                report.already_gone += 1
                on_step(alias, "done")
                continue
            ledger.mark(alias, "pending")
            limiter.wait()
            result = pictrs.purge(alias)
        except PictrsError as exc:
            ledger.mark(alias, "failed", exc.message)
            report.failed += 1
            report.errors.append(f"{alias}: {exc.message}")
            on_step(alias, "failed")
            if report.failed >= max_errors:
                raise
            continue
        if result.purged:
            ledger.mark(alias, "done", ",".join(result.aliases) or None)
            report.purged += 1
        else:
            ledger.mark(alias, "done", "already gone")
            report.already_gone += 1
        on_step(alias, "done")
    return report
