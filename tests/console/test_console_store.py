"""The console's store on SQLite and PostgreSQL: per-minute counts and top reasons
counted by the database (in UTC, whatever the server's time zone), sessions kept
by the hash of the cookie only, and the switch state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from sqlalchemy import select

from warden.domain.verdict import Decision, Reason, Verdict
from warden.store.console import ConsoleSession, ConsoleSessionRow, ConsoleStore
from warden.store.database import Database
from warden.store.decisions import DecisionRow, verdict_to_row


def _verdict(decision: Decision, code: str | None) -> Verdict:
    reasons = (Reason(code, "why", MappingProxyType({})),) if code else ()
    return Verdict(decision=decision, reasons=reasons, sha256="ab" * 32, size=10)


def test_counts_per_minute_outcome_and_source_and_the_top_reasons(database: Database) -> None:
    base = datetime(2026, 11, 25, 17, 0, 30, tzinfo=UTC)
    rows = [
        (0, Decision.ACCEPT, None, "upload"),
        (5, Decision.REJECT, "label_reject", "upload"),
        (10, Decision.REJECT, "hash_match", "remote"),
        (70, Decision.REJECT, "hash_match", "upload"),
        (75, Decision.REVIEW, "label_review", "upload"),
        (-3600, Decision.REJECT, "too_old", "upload"),  # before the window
    ]
    with database.session() as s:
        for seconds, decision, code, source in rows:
            s.add(
                verdict_to_row(
                    _verdict(decision, code),
                    source=source,
                    uploader=None,
                    config_version="t",
                    evidence_id=None,
                    created_at=base + timedelta(seconds=seconds),
                )
            )
    store = ConsoleStore(database)
    since = base.replace(second=0)
    counts = {(c.minute, c.decision, c.source): c.count for c in store.decision_counts(since)}
    first, second = since, since + timedelta(minutes=1)
    assert counts == {
        (first, "accept", "upload"): 1,
        (first, "reject", "upload"): 1,
        (first, "reject", "remote"): 1,
        (second, "reject", "upload"): 1,
        (second, "review", "upload"): 1,
    }
    assert store.top_reasons(since) == [("hash_match", 2), ("label_reject", 1), ("label_review", 1)]
    with database.session() as s:
        assert s.scalar(select(DecisionRow.id).limit(1)) is not None


def test_sessions_are_found_by_the_cookie_and_stored_by_its_hash(database: Database) -> None:
    store = ConsoleStore(database)
    now = datetime.now(UTC)
    session = ConsoleSession(7, "admin", "admin", (), "csrf-token", now + timedelta(hours=1))
    store.create_session("the-cookie-value", session, now)
    assert store.session("the-cookie-value", now) == session
    assert store.session("another", now) is None
    assert store.session("the-cookie-value", now + timedelta(hours=2)) is None  # expired
    with database.session() as s:
        stored = s.scalars(select(ConsoleSessionRow.id_hash)).all()
    assert stored and "the-cookie-value" not in stored[0]
    store.set_state("uploads", "off", "admin", now)
    store.set_state("uploads", "admins", "admin", now)
    assert store.state("uploads") == "admins"
