"""The one decision recorder (issue 14), shared by the media gate and rescans:
evidence first, then the row; rows from concurrent requests in one commit, each
answer waiting for its own; one bad row costs only its own answer; and a slow body
on /api/v1/scan is logged like one on /pictrs/validate (issue 12)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.web.gate import gate_settings
from warden.domain.policy import FailMode
from warden.domain.verdict import Decision, Reason, Verdict
from warden.services.recorder import DecisionRecorder, Facts
from warden.store.database import Database
from warden.store.decisions import DecisionEntry, DecisionLog
from warden.web.app import create_app


def _verdict(n: int, decision: Decision = Decision.ACCEPT, **detail: object) -> Verdict:
    reasons = () if decision is Decision.ACCEPT else (Reason("label_review", "x", detail),)
    return Verdict(decision, reasons, sha256=f"{n:064x}", size=n)


class _HeldLog(DecisionLog):
    """The real log, whose first transaction waits until the test lets it commit, so
    what queues meanwhile is known (the writer's own thread, not Lemmy: no double)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def record_many(self, entries: Sequence[DecisionEntry]) -> list[int]:
        self.batches.append(len(entries))
        if len(self.batches) == 1:
            self.started.set()
            self.release.wait(10)
        return super().record_many(entries)


async def test_concurrent_rows_share_one_commit_and_each_answer_has_its_row(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    database.upgrade()
    log = _HeldLog(database)
    recorder = DecisionRecorder(log, None, fail_modes={}, config_version="test")
    try:
        first = asyncio.create_task(recorder.arecord(_verdict(1), Facts("upload"), None))
        await asyncio.to_thread(log.started.wait, 10)
        rest = [
            asyncio.create_task(recorder.arecord(_verdict(n), Facts("upload"), None))
            for n in range(2, 21)
        ]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in [first, *rest])  # nobody answered early
        log.release.set()
        recorded = await asyncio.gather(first, *rest)
    finally:
        recorder.close()
    assert log.batches == [1, 19]  # the nineteen that waited went in one transaction
    assert all(r.logged for r in recorded)
    rows = {r.id: r for r in DecisionLog(database).recent(limit=50)}
    database.dispose()
    assert len(rows) == 20
    for n, r in enumerate(recorded, start=1):
        assert r.decision_id is not None
        assert rows[r.decision_id].verdict.sha256 == f"{n:064x}"


async def test_a_bad_row_costs_only_its_own_answer(tmp_path: Path):
    """A row the database refuses (a detail that is not JSON) fails its group's
    transaction; the others are written again one by one and answered as logged."""
    database = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    database.upgrade()
    log = _HeldLog(database)
    recorder = DecisionRecorder(
        log, None, fail_modes={"upload": FailMode.OPEN}, config_version="test"
    )
    try:
        first = asyncio.create_task(recorder.arecord(_verdict(1), Facts("upload"), None))
        await asyncio.to_thread(log.started.wait, 10)
        bad = _verdict(2, Decision.REVIEW, unserialisable={1, 2})
        tasks = [
            asyncio.create_task(recorder.arecord(v, Facts("upload"), None))
            for v in (_verdict(3), bad, _verdict(4))
        ]
        await asyncio.sleep(0.05)
        log.release.set()
        _, good, refused, other = await asyncio.gather(first, *tasks)
    finally:
        recorder.close()
    database.dispose()
    assert good.logged and other.logged and good.decision_id and other.decision_id
    assert not refused.logged and refused.decision_id is None
    # the failure mode of its source decides (open here: accepted, saying why)
    assert refused.verdict.decision is Decision.ACCEPT
    assert refused.verdict.codes == ["store_error"]
    assert refused.verdict.reasons[0].detail["fail_mode"] == "open"


async def test_a_slow_body_on_the_scan_api_is_logged_then_answered_408(
    tmp_path, db_url, classifier, gate_services_tracked
):
    settings = gate_settings(tmp_path, db_url, server={"body_timeout_s": 0.3})
    services = gate_services_tracked(settings, classifier)
    _, token = services.tokens.create("slow-bot")
    app = create_app(settings, services)
    stalled = asyncio.Event()
    sent: list[int] = []

    async def receive() -> dict[str, object]:
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"\xff\xd8part", "more_body": True}
        await stalled.wait()  # the rest never comes
        return {"type": "http.disconnect"}

    messages: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/api/v1/scan",
        "raw_path": b"/api/v1/scan",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [
            (b"content-length", b"5000"),
            (b"content-type", b"image/jpeg"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8790),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    await services.gate.close()
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")  # type: ignore[misc]
    assert start["status"] == 408
    assert json.loads(body)["error"] == "body_timeout"
    [row] = services.decisions.recent()
    assert row.source == "api" and row.uploader == "token:slow-bot"
    assert row.verdict.decision is Decision.REJECT and row.verdict.codes == ["body_timeout"]
