"""The verdict-combination table and the trigger rules (domain/scanners.py)."""

from __future__ import annotations

import pytest

from warden.domain.scanners import (
    ExternalVerdict,
    RunOn,
    ScannerFailMode,
    ScanTrigger,
    combine,
)
from warden.domain.verdict import Decision, Reason

A, V, R = Decision.ACCEPT, Decision.REVIEW, Decision.REJECT
CLOSED, OPEN, SKIP = ScannerFailMode.CLOSED, ScannerFailMode.OPEN, ScannerFailMode.SKIP


def said(decision: Decision, name: str = "s") -> ExternalVerdict:
    return ExternalVerdict(name, "http", decision, 12.5, {"raw": decision.value})


def failed(mode: ScannerFailMode, name: str = "f") -> ExternalVerdict:
    return ExternalVerdict(
        name, "http", None, 5000.0, fail_mode=mode, error_code="scanner_timeout", error="late"
    )


@pytest.mark.parametrize(
    ("base", "externals", "expected"),
    [
        (A, [], A),
        (A, [said(A)], A),
        (A, [said(V)], V),  # review escalates
        (A, [said(R)], R),  # any reject rejects
        (V, [said(A)], V),  # an accept never lowers the model's review
        (V, [said(R)], R),
        (R, [said(A)], R),  # nor its reject
        (A, [said(A), said(V), said(A)], V),
        (A, [said(V), said(R)], R),
        (A, [failed(CLOSED)], R),
        (A, [failed(OPEN)], A),
        (A, [failed(SKIP)], A),
        (V, [failed(OPEN)], V),
        (V, [failed(CLOSED)], R),
        (A, [failed(SKIP), said(V)], V),
        (A, [failed(OPEN), said(R)], R),
    ],
)
def test_combination_table(base, externals, expected):
    base_reasons = (Reason("label_review", "model"),) if base is V else ()
    combined = combine(base, base_reasons, externals)
    assert combined.decision is expected
    assert len(combined.reasons) == len(base_reasons) + len(externals)  # every verdict recorded


def test_the_deciding_scanner_comes_first_and_failures_say_their_mode():
    model = Reason("label_review", "model said review")
    combined = combine(V, (model,), [said(A, "clear"), said(R, "hit"), failed(OPEN, "down")])
    assert [r.code for r in combined.reasons] == [
        "scanner_reject",
        "label_review",
        "scanner_clear",
        "scanner_unavailable",
    ]
    first = combined.reasons[0].detail
    assert first["scanner"] == "hit" and first["labels"] == {"raw": "reject"}
    assert first["latency_ms"] == 12.5
    down = combined.reasons[-1].detail
    assert down["fail_mode"] == "open" and down["error"] == "scanner_timeout"


def test_closed_failure_that_decides_is_the_first_reason():
    combined = combine(A, (), [said(A, "ok"), failed(CLOSED, "down")])
    assert combined.decision is R
    assert combined.reasons[0].code == "scanner_unavailable"
    assert combined.reasons[0].detail["fail_mode"] == "closed"


@pytest.mark.parametrize(
    ("trigger", "source", "size", "decision", "runs"),
    [
        (ScanTrigger(), "upload", 10, A, True),
        (ScanTrigger(), "remote", 10, V, True),
        (ScanTrigger(), "upload", 10, R, False),  # already refused: never re-asked
        (ScanTrigger(RunOn.REMOTE), "upload", 10, A, False),
        (ScanTrigger(RunOn.REMOTE), "remote", 10, A, True),
        (ScanTrigger(RunOn.REMOTE), "ingest", 10, A, True),
        (ScanTrigger(RunOn.UPLOAD), "remote", 10, A, False),
        (ScanTrigger(RunOn.UPLOAD), "api", 10, A, True),
        (ScanTrigger(only_review=True), "upload", 10, A, False),
        (ScanTrigger(only_review=True), "upload", 10, V, True),
        (ScanTrigger(min_bytes=1000), "upload", 999, A, False),
        (ScanTrigger(min_bytes=1000), "upload", 1000, A, True),
    ],
)
def test_when_a_scanner_runs(trigger, source, size, decision, runs):
    assert trigger.applies(source, size, decision) is runs
