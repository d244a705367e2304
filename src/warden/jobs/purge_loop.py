"""The one purge loop, shared by `warden purge federated` and `warden rescan --purge`.

For each (ledger key, alias) still to do: an optional check that may settle
it without a purge (gone already, or kept as local), `pending` written to the
ledger, the rate limit, pict-rs's purge, and the outcome written back; a
pict-rs error marks the alias `failed` with the reason and the loop goes on,
until `max_errors` failures stop it (the last error is raised: resume with the
same command). Every state is committed before the next network call, so the
caller's ledger makes the loop resumable and idempotent: a killed run leaves at
most one alias `pending`, and purging it again is answered "already gone".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from warden.adapters.pictrs import PictrsAdmin
from warden.domain.purge import PurgeState
from warden.errors import PictrsError


class PurgeMarks(Protocol):
    """What the loop needs of a ledger: to record each alias's state as it changes."""

    def mark_purge(self, key: str, state: PurgeState, detail: str | None = None) -> None: ...


@dataclass(frozen=True)
class Settled:
    """A check before the purge found nothing to purge: the state to record, and why."""

    state: PurgeState
    detail: str


#: A check before each purge: given the alias, `Settled`, or the aliases the purge is
#: expected to remove (recorded when pict-rs's answer does not list them).
Check = Callable[[str], Settled | tuple[str, ...]]


@dataclass
class PurgeReport:
    purged: int = 0
    already_gone: int = 0
    skipped_local: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, state: PurgeState) -> None:
        if state is PurgeState.PURGED:
            self.purged += 1
        elif state is PurgeState.GONE:
            self.already_gone += 1
        elif state is PurgeState.SKIPPED:
            self.skipped_local += 1
        elif state is PurgeState.FAILED:
            self.failed += 1


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


def purge_each(
    todo: Iterable[tuple[str, str]],
    pictrs: PictrsAdmin,
    ledger: PurgeMarks,
    report: PurgeReport,
    *,
    rate: float,
    max_errors: int = 20,
    check: Check | None = None,
    on_step: Callable[[str, str], None] = lambda key, state: None,
) -> None:
    """Purge each (ledger key, alias) of `todo`, recording every state in `ledger` and
    counting every outcome in `report`; `on_step(key, state)` after each one.

    Raises the `PictrsError` that makes `max_errors` failures (the ledger holds them all)."""

    def settle(key: str, state: PurgeState, detail: str | None) -> None:
        ledger.mark_purge(key, state, detail)
        report.count(state)
        on_step(key, state.value)

    limiter = RateLimiter(rate)
    for key, alias in todo:
        expected: tuple[str, ...] = ()
        try:
            found = check(alias) if check is not None else ()
            if isinstance(found, Settled):
                settle(key, found.state, found.detail)
                continue
            expected = found
            ledger.mark_purge(key, PurgeState.PENDING)
            limiter.wait()
            result = pictrs.purge(alias)
        except PictrsError as exc:
            report.errors.append(
                f"{key}: {exc.message}" if key == alias else f"{key} ({alias}): {exc.message}"
            )
            settle(key, PurgeState.FAILED, exc.message)
            if report.failed >= max_errors:
                raise
            continue
        if result.purged:
            settle(key, PurgeState.PURGED, ",".join(result.aliases or expected) or None)
        else:
            settle(key, PurgeState.GONE, "already gone")
