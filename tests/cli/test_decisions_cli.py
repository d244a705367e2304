"""`warden decisions list|show|tail` over a real database (issue 18, "the same on the
command line"): filters, bad input refused by name, the live tail, and the fallback
attribution from Lemmy's own `local_image` (tests/servers/lemmy_schema.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tests.servers import lemmy_schema
from warden.cli import app
from warden.domain.verdict import Decision, Reason, Verdict
from warden.store.database import Database
from warden.store.decisions import Attribution, DecisionLog, verdict_to_row

runner = CliRunner()
SHA = {i: f"{i:02x}" * 32 for i in range(1, 8)}


def _verdict(decision: Decision, code: str | None, sha: str) -> Verdict:
    reasons = (Reason(code, f"because {code}"),) if code else ()
    return Verdict(decision, reasons, sha256=sha, size=1234)


def _seed(url: str) -> DecisionLog:
    """Seven decisions over three days, attributed as the proxy records them."""
    db = Database(url)
    db.upgrade()
    log = DecisionLog(db)
    now = datetime.now(UTC)
    rows = [
        (1, Decision.ACCEPT, None, "upload", Attribution(1, "alice", "198.51.100.1", "a1.png"), 3),
        (2, Decision.REJECT, "label_reject", "upload", Attribution(2, "bob", "203.0.113.9"), 2),
        (3, Decision.REVIEW, "label_review", "upload", Attribution(2, "bob", "203.0.113.9"), 1),
        (4, Decision.REJECT, "hash_match", "remote", Attribution(), 0),
        (5, Decision.ACCEPT, None, "upload", Attribution(1, "alice", "198.51.100.1", "a5.png"), 0),
        (6, Decision.REJECT, "label_reject", "api", Attribution(), 0),
        (7, Decision.ACCEPT, None, "upload", Attribution(), 0),  # no proxy: nobody known
    ]
    with db.session() as s:
        for i, decision, code, source, who, days in rows:
            s.add(
                verdict_to_row(
                    _verdict(decision, code, SHA[i]),
                    source=source,
                    uploader="moderation-bot" if source == "api" else None,
                    config_version="cv",
                    evidence_id=None,
                    created_at=now - timedelta(days=days, minutes=7 - i),
                    attribution=who,
                )
            )
    # the hook's row for #5 answered from it
    with db.session() as s:
        s.add(
            verdict_to_row(
                _verdict(Decision.ACCEPT, None, SHA[5]),
                source="upload",
                uploader=None,
                config_version="cv",
                evidence_id=None,
                attribution=Attribution(1, "alice", "198.51.100.1", "a5.png", 5),
            )
        )
    return log


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'warden.db'}"
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WARDEN_DATABASE__URL", url)
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    _seed(url).database.dispose()
    return url


def _ids(*args: str) -> list[int]:
    result = runner.invoke(app, ["decisions", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_list_filters_by_outcome_source_reason_account_hash_and_time(env: str) -> None:
    assert _ids() == [8, 7, 6, 5, 4, 3, 2, 1]
    assert _ids("--outcome", "reject") == [6, 4, 2]
    assert _ids("--source", "remote") == [4]
    assert _ids("--reason", "label_reject") == [6, 2]
    assert _ids("--account", "bob") == [3, 2]
    assert _ids("--account", "@alice", "--outcome", "accept") == [8, 5, 1]
    assert _ids("--account", "moderation-bot") == [6]  # an /api/v1/scan token's uploader
    assert _ids("--hash", SHA[3]) == [3]
    assert _ids("--hash", SHA[4][:8]) == [4]
    assert _ids("--since", "12h") == [8, 7, 6, 5, 4]
    assert _ids("--since", "36h", "--until", "12h") == [3]
    assert _ids("--limit", "2") == [8, 7]


def test_list_lines_and_json_carry_the_attribution(env: str) -> None:
    result = runner.invoke(app, ["decisions", "list", "--account", "bob", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\t")[3:7] == ["review", "label_review", "bob", "203.0.113.9"]
    [line] = runner.invoke(app, ["decisions", "list", "--json", "--hash", SHA[1]]).stdout.split(
        "\n"
    )[:1]
    row = json.loads(line)
    assert (row["account"], row["account_id"], row["client_address"], row["alias"]) == (
        "alice",
        1,
        "198.51.100.1",
        "a1.png",
    )
    assert row["decision"] == "accept" and row["reasons"] == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list", "--outcome", "maybe"], "--outcome is one of accept, review, reject"),
        (["list", "--hash", "xyz"], "--hash takes a SHA-256"),
        (["list", "--hash", "abc"], "--hash takes a SHA-256"),  # too short a prefix
        (["list", "--since", "yesterday"], "neither a duration"),
        (["list", "--until", "2026-13-01"], "month must be in 1..12"),
        (["tail", "--until", "1h"], "No such option"),
    ],
)
def test_bad_input_is_refused_by_name_with_exit_2(env: str, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["decisions", *args])
    assert result.exit_code == 2
    assert says in result.output


def test_show_names_the_link_both_ways_and_a_missing_id_is_not_found(env: str) -> None:
    shown = runner.invoke(app, ["decisions", "show", "5", "--json"])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert detail["linked_from"] == [8] and detail["alias"] == "a5.png"
    hook = json.loads(runner.invoke(app, ["decisions", "show", "8", "--json"]).stdout)
    assert hook["linked_decision_id"] == 5 and hook["account"] == "alice"
    missing = runner.invoke(app, ["decisions", "show", "999"])
    assert missing.exit_code == 1 and "no decision 999" in missing.output


def test_tail_follows_new_decisions_live_with_its_filter(env: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("warden")),
        "decisions",
        "tail",
        "--json",
        "--lines",
        "1",
        "--interval",
        "0.1",
        "--outcome",
        "reject",
        "--stop-after",
        "2",
    ]
    process = subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["id"] == 6  # the latest matching decision, before following
        log = DecisionLog(Database(env))
        for decision, code, sha in [
            (Decision.ACCEPT, None, "aa" * 32),  # filtered out
            (Decision.REJECT, "label_reject", "bb" * 32),
            (Decision.REJECT, "hash_match", "cc" * 32),
        ]:
            log.record(
                _verdict(decision, code, sha),
                source="upload",
                config_version="cv",
                attribution=Attribution(3, "carol", "192.0.2.3"),
            )
            time.sleep(0.2)
        output, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors
    followed = [json.loads(line) for line in output.splitlines()]
    assert [(r["sha256"], r["account"]) for r in followed] == [
        ("bb" * 32, "carol"),
        ("cc" * 32, "carol"),
    ]


@pytest.mark.parametrize("lemmy", ["0.19.5", "1.0"])
def test_show_falls_back_to_lemmys_local_image_when_nobody_was_attributed(
    postgres, env: str, monkeypatch: pytest.MonkeyPatch, lemmy: str
) -> None:
    """Without the proxy, Lemmy's own upload record names the uploader after the fact:
    `local_image.local_user_id` (0.19.4+: 0.19.5 crates/db_schema/src/schema.rs:344-349)
    or `local_image.person_id` (1.0.0-beta.1 crates/db_schema_file/src/schema.rs:364-369)."""
    url = postgres.create_database(f"lemmy_{os.getpid()}_{time.monotonic_ns()}")
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(lemmy_schema.ddl(lemmy))
        conn.execute("INSERT INTO person (id, name) VALUES (41, 'dave')")
        conn.execute("INSERT INTO local_user (id, person_id) VALUES (9, 41)")
        if lemmy == "1.0":
            conn.execute("INSERT INTO local_image (pictrs_alias, person_id) VALUES ('x7.png', 41)")
        else:
            conn.execute(
                "INSERT INTO local_image (pictrs_alias, local_user_id, pictrs_delete_token)"
                " VALUES ('x7.png', 9, 't')"
            )
    db = Database(env)
    with db.session() as s:  # pict-rs's alias became known later (a flag, a purge)
        s.execute(
            __import__("sqlalchemy").text("UPDATE decisions SET alias = 'x7.png' WHERE id = 7")
        )
    db.dispose()
    before = json.loads(runner.invoke(app, ["decisions", "show", "7", "--json"]).stdout)
    assert before["account"] is None and "lemmy_recorded_uploader" not in before
    monkeypatch.setenv("WARDEN_FEDERATED__LEMMY_DATABASE_URL", url)
    shown = runner.invoke(app, ["decisions", "show", "7", "--json"])
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)["lemmy_recorded_uploader"]
    assert (found["account"], found["account_id"], found["alias"]) == ("dave", 41, "x7.png")


def test_flag_names_the_attributed_uploader_for_media_that_came_through_pictrs(
    env: str,
) -> None:
    """Issue 18: `warden flag --ban` could not ban the real uploader of pict-rs media;
    the attributed account is now the uploader it names (and would ban)."""
    result = runner.invoke(app, ["flag", "3", "--reason", "test"])
    assert result.exit_code == 0, result.output
    assert "uploaders: bob" in result.output
