"""The one purge loop under both ledgers, against the pict-rs internal API double
(tests/servers/pictrs_internal.py): resuming an interrupted alias, stopping after
`max_errors` failures, and the same states in both ledgers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.pictrs_internal import PictrsInternalDouble
from warden.adapters.pictrs import PictrsAdmin
from warden.domain.purge import PurgeState
from warden.errors import PictrsError
from warden.jobs.purge_loop import PurgeReport, purge_each
from warden.jobs.rescan import RescanResult
from warden.jobs.rescan_purge import purge_refused
from warden.store.purge_ledger import PurgeLedger
from warden.store.rescan_ledger import RescanLedger

ALIASES = [f"r{i}.png" for i in range(5)]


def refused_ledger(path: Path) -> RescanLedger:
    """A rescan ledger whose five keys were refused for a label, each with its alias."""
    ledger = RescanLedger(path)
    for i, alias in enumerate(ALIASES):
        ledger.record(RescanResult(f"00{i}/r", "reject", ("label_reject",), "ab", None))
        ledger.set_alias(f"00{i}/r", alias)
    return ledger


def test_a_rescan_purge_killed_mid_call_resumes_without_repeating(tmp_path: Path) -> None:
    """A key left `pending` (its purge went through, the process died before the answer
    was written) is settled as gone on the next run; nothing is purged twice."""
    ledger = refused_ledger(tmp_path / "rescan.sqlite")
    with (
        PictrsInternalDouble(set(ALIASES[1:])) as pictrs,  # r0.png was purged before the crash
        PictrsAdmin(pictrs.url, "pictrs-key") as client,
    ):
        ledger.mark_purge("000/r", PurgeState.PENDING)
        report = purge_refused(ledger, client, [], rate=0)
        assert (report.refused, report.mapped, report.purged, report.already_gone) == (5, 5, 4, 1)
        assert ledger.purge_summary() == {"purged": 4, "gone": 1}
        again = purge_refused(ledger, client, [], rate=0)
        assert (again.refused, again.mapped) == (0, 0)
        assert pictrs.purge_calls == dict.fromkeys(ALIASES, 1)
        assert pictrs.aliases == set()
    ledger.close()


def test_the_loop_stops_after_max_errors_in_either_ledger(tmp_path: Path) -> None:
    """A read-only pict-rs refuses every purge: both paths stop at the same count, with
    the same state recorded, and leave the rest to do."""
    rescan = refused_ledger(tmp_path / "rescan.sqlite")
    federated = PurgeLedger(tmp_path / "purge.sqlite")
    federated.replan([(alias, "test") for alias in ALIASES])
    with (
        PictrsInternalDouble(set(ALIASES), version="0.5.6", read_only=True) as pictrs,
        PictrsAdmin(pictrs.url, "pictrs-key") as client,
    ):
        with pytest.raises(PictrsError, match="read-only"):
            purge_refused(rescan, client, [], rate=0, max_errors=2)
        report = PurgeReport()
        todo = [(alias, alias) for alias, _ in federated.todo()]
        with pytest.raises(PictrsError, match="read-only"):
            purge_each(todo, client, federated, report, rate=0, max_errors=2)
        assert pictrs.aliases == set(ALIASES)
    assert report.failed == 2 and len(report.errors) == 2
    assert report.errors[0].startswith("r0.png: pict-rs refused to purge r0.png")
    assert rescan.purge_summary() == {"failed": 2, "not purged": 3}
    assert federated.summary() == {"failed": 2, "planned": 3}
    assert len(rescan.purge_todo()) == 5  # the failed ones are tried again, and the rest
    rescan.close()
    federated.close()
