"""External scanners and alerts, built together from settings, and rebuilt on a reload.

The two are wired to each other (a scanner hit that fed the flag bank raises a
`flag_action` alert), so they are built in one place, by `build_services` at
start and by `Services.reload` on SIGHUP. A rebuild reads every secret file
again (a rotated key takes effect), keeps what must survive it (one-time media
links already handed out, the alerts' dedup and hourly budgets, a throttled
scanner's back-off) and leaves the old clients to finish what is in flight
before they are closed (`retire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from warden.config import Settings
from warden.services.alerts import Alerts, build_alerts, scanner_fed_alert
from warden.services.external_scan import ExternalScans, bank_flagger, build_external_scans
from warden.services.factories import bank_store
from warden.store.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alerting:
    """The external scanners and the alert channels (each None when not configured)."""

    external: ExternalScans | None
    alerts: Alerts | None

    @property
    def grace_s(self) -> float:
        """How long requests already in flight may still need these clients."""
        waits = [s.timeout_s for s in self.external.scanners] if self.external else []
        if self.alerts is not None:
            waits.append(self.alerts.settings.timeout_s)
        return max(waits, default=0.0)

    async def aclose(self) -> None:
        if self.external is not None:
            await self.external.aclose()
        if self.alerts is not None:
            await self.alerts.aclose()


def build_alerting(
    settings: Settings, database: Database, *, previous: Alerting | None = None
) -> Alerting:
    """Scanners and alerts for `settings` (ConfigError, with nothing left open, when
    they cannot be built); with `previous`, the state that must survive is carried over."""
    # When the scanners cannot be built, the alerts' client is dropped unclosed: nothing
    # was sent through it, so it holds no connection (and no loop may be running here).
    alerts = build_alerts(settings)
    old_links = previous.external.links if previous and previous.external else None
    external = build_external_scans(
        settings,
        flagger=bank_flagger(settings, bank_store(database)),
        on_feed=scanner_fed_alert(settings, alerts),
        links=old_links,
    )
    if previous is not None:
        if alerts is not None and previous.alerts is not None:
            alerts.carry_over(previous.alerts)
        if external is not None and previous.external is not None:
            external.carry_over(previous.external)
    return Alerting(external, alerts)


async def retire(old: Alerting, stop: asyncio.Event) -> None:
    """Close the replaced clients once what was in flight through them is done (their
    longest timeout), or at once when the service stops."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), old.grace_s)
    try:
        await old.aclose()
    except Exception:  # a client that fails to close must not take the service down
        log.exception("closing the scanners and alerts replaced by a reload failed")
