"""The decisions log and API tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

from warden.domain.verdict import Decision, FrameHash, MediaInfo, Reason, Verdict
from warden.store.base import utcnow
from warden.store.database import Database
from warden.store.decisions import DecisionLog
from warden.store.tokens import TokenStore


def _verdict() -> Verdict:
    return Verdict(
        decision=Decision.REJECT,
        reasons=(
            Reason(
                "label_reject",
                "FACE_FEMALE scored 0.80",
                MappingProxyType({"label": "FACE_FEMALE", "score": 0.8, "threshold": 0.5}),
            ),
        ),
        sha256="ab" * 32,
        size=1234,
        media=MediaInfo("JPEG", "image/jpeg", 512, 512, 1, 1),
        frames=(FrameHash(0, "cd" * 32, 100),),
        labels=MappingProxyType({"FACE_FEMALE": 0.8, "FACE_MALE": 0.0}),
        model="320n",
        matches=(MappingProxyType({"bank": "b", "distance": 3}),),
    )


def test_a_decision_round_trips(database: Database):
    log = DecisionLog(database)
    verdict = _verdict()
    first = log.record(
        verdict, source="upload", uploader="alice", config_version="v1", evidence_id="e1"
    )
    record = log.get(first)
    assert record is not None
    assert record.verdict == verdict
    assert (record.source, record.uploader, record.config_version, record.evidence_id) == (
        "upload",
        "alice",
        "v1",
        "e1",
    )
    assert record.created_at.tzinfo is not None
    assert log.get(first + 1000) is None


def test_recent_is_newest_first_and_filters_by_time(database: Database):
    log = DecisionLog(database)
    before = utcnow() - timedelta(seconds=1)
    ids = [log.record(_verdict(), source="api", config_version="v") for _ in range(3)]
    assert [r.id for r in log.recent(before)] == ids[::-1]
    assert log.recent(utcnow() + timedelta(hours=1)) == []
    assert [r.id for r in log.by_sha256("ab" * 32)] == ids


def test_a_decision_without_bytes_keeps_no_hash(database: Database):
    log = DecisionLog(database)
    v = Verdict(Decision.REJECT, (Reason("file_too_large", "too big"),), sha256="", size=10**10)
    record = log.get(log.record(v, source="upload", config_version="v"))
    assert record is not None and record.verdict.sha256 == "" and record.verdict.size == 10**10


def test_tokens_are_hashed_verified_and_revoked(database: Database):
    tokens = TokenStore(database)
    token, plaintext = tokens.create("moderation bot")
    assert plaintext.startswith("wdn_")
    with database.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").scalar_one()
    assert plaintext not in stored and len(stored) == 64
    found = tokens.verify(plaintext)
    assert found is not None and found.id == token.id and found.name == "moderation bot"
    assert tokens.verify(plaintext + "x") is None
    assert tokens.list()[0].last_used_at is not None
    assert tokens.revoke(token.id)
    assert tokens.verify(plaintext) is None
    assert not tokens.revoke(999)
    assert not tokens.list()[0].active
