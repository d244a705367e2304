"""`warden purge federated` against a real PostgreSQL holding Lemmy's schema and a pict-rs double."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from typer.testing import CliRunner

from tests.servers.pictrs_internal import PictrsInternalDouble
from warden.adapters.lemmy_db import LemmyDatabase, alias_of
from warden.adapters.pictrs import PictrsAdmin
from warden.cli import app
from warden.jobs.purge import RateLimiter, plan_purge, run_purge
from warden.store.purge_ledger import PurgeLedger

pytestmark = pytest.mark.postgres

HOST = "lemmy.example"
# Lemmy 0.19's tables, with their real column names (only the columns read here matter)
LEMMY_SCHEMA = """
CREATE TABLE local_image (
    local_user_id integer,
    pictrs_alias text PRIMARY KEY,
    pictrs_delete_token text NOT NULL,
    published timestamptz DEFAULT now() NOT NULL
);
CREATE TABLE person (id serial PRIMARY KEY, name text NOT NULL, avatar text, banner text);
CREATE TABLE community (id serial PRIMARY KEY, name text NOT NULL, icon text, banner text);
CREATE TABLE post (id serial PRIMARY KEY, name text NOT NULL, url text, thumbnail_url text);
CREATE TABLE remote_image (id serial PRIMARY KEY, link text NOT NULL UNIQUE, published timestamptz DEFAULT now());
"""

N_LOCAL, N_REMOTE = 15, 40


def _pictrs_url(alias: str, host: str = HOST) -> str:
    return f"https://{host}/pictrs/image/{alias}"


@pytest.fixture
def lemmy_db(postgres):
    """A Lemmy-shaped database: local uploads, cached federated thumbnails and avatars, and noise."""
    url = postgres.create_database(f"lemmy_{os.getpid()}_{time.monotonic_ns()}")
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    local = [f"local-{i:03}.webp" for i in range(N_LOCAL)]
    remote = [f"remote-{i:03}.jpeg" for i in range(N_REMOTE)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEMMY_SCHEMA)
        for alias in local:
            conn.execute(
                "INSERT INTO local_image (local_user_id, pictrs_alias, pictrs_delete_token) VALUES (1, %s, 'tok')",
                (alias,),
            )
        for i, alias in enumerate(
            local[:8]
        ):  # local uploads used in posts and avatars: must survive
            conn.execute(
                "INSERT INTO post (name, url) VALUES (%s, %s)", (f"local {i}", _pictrs_url(alias))
            )
        conn.execute(
            "INSERT INTO person (name, avatar) VALUES ('me', %s)", (_pictrs_url(local[9]),)
        )
        for i, alias in enumerate(remote[:30]):  # cached thumbnails of federated posts
            conn.execute(
                "INSERT INTO post (name, url, thumbnail_url) VALUES (%s, %s, %s)",
                (f"fed {i}", f"https://other.example/article/{i}", _pictrs_url(alias)),
            )
        for alias in remote[30:35]:
            conn.execute(
                "INSERT INTO person (name, avatar) VALUES ('remote', %s)", (_pictrs_url(alias),)
            )
        for alias in remote[35:]:
            conn.execute(
                "INSERT INTO community (name, icon) VALUES ('c', %s)", (_pictrs_url(alias),)
            )
        # another instance's pict-rs URL is not ours to purge
        conn.execute(
            "INSERT INTO post (name, thumbnail_url) VALUES ('x', %s)",
            (_pictrs_url("theirs.png", "other.example"),),
        )
    yield url, set(local), set(remote)


def test_alias_of_only_takes_this_instances_pictrs_urls():
    assert alias_of("https://lemmy.example/pictrs/image/abc.jpeg?format=webp", [HOST]) == "abc.jpeg"
    assert alias_of("https://other.example/pictrs/image/abc.jpeg", [HOST]) is None
    assert alias_of("https://lemmy.example/some/page", [HOST]) is None


def test_purge_removes_exactly_the_remote_images(lemmy_db, tmp_path):
    url, local, remote = lemmy_db
    with PictrsInternalDouble(local | remote | {"orphan.png"}) as pictrs:
        lemmy = LemmyDatabase(url)
        ledger = PurgeLedger(tmp_path / "ledger.sqlite")
        plan = plan_purge(lemmy, ledger, [HOST])
        assert plan.candidates == N_REMOTE and plan.local_skipped == 9
        with PictrsAdmin(pictrs.url, "pictrs-key") as client:
            report = run_purge(lemmy, client, ledger, rate=0)
        assert report.purged == N_REMOTE and report.failed == 0
        assert pictrs.aliases == local | {"orphan.png"}
        assert set(pictrs.purge_calls) == remote
        assert max(pictrs.purge_calls.values()) == 1
        assert ledger.summary() == {"done": N_REMOTE}
        lemmy.close()


def test_a_local_upload_made_mid_run_is_never_purged(lemmy_db, tmp_path):
    url, local, remote = lemmy_db
    victim = sorted(remote)[5]
    with PictrsInternalDouble(local | remote) as pictrs:
        lemmy = LemmyDatabase(url)
        ledger = PurgeLedger(tmp_path / "ledger.sqlite")
        plan_purge(lemmy, ledger, [HOST])
        # the alias becomes a local upload after planning (Lemmy re-used it): the run must re-check
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO local_image (pictrs_alias, pictrs_delete_token) VALUES (%s, 't')",
                (victim,),
            )
        with PictrsAdmin(pictrs.url, "pictrs-key") as client:
            report = run_purge(lemmy, client, ledger, rate=0)
        assert report.skipped_local == 1
        assert victim in pictrs.aliases and victim not in pictrs.purge_calls
        lemmy.close()


def _cli_env(tmp_path, lemmy_url: str, pictrs_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_FEDERATED__LEMMY_DATABASE_URL": lemmy_url,
        "WARDEN_FEDERATED__LOCAL_HOSTS": f'["{HOST}"]',
        "WARDEN_PICTRS__URL": pictrs_url,
        "WARDEN_PICTRS__API_KEY": "pictrs-key",
    }


def test_dry_run_changes_nothing(lemmy_db, tmp_path):
    url, local, remote = lemmy_db
    with PictrsInternalDouble(local | remote) as pictrs:
        result = CliRunner().invoke(
            app, ["purge", "federated", "--dry-run"], env=_cli_env(tmp_path, url, pictrs.url)
        )
        assert result.exit_code == 0, result.output
        assert f"{N_REMOTE}" in result.output and "dry run" in result.output
        assert pictrs.aliases == local | remote and not pictrs.purge_calls


def test_killed_run_resumes_without_repeating_or_skipping(lemmy_db, tmp_path):
    url, local, remote = lemmy_db
    with PictrsInternalDouble(local | remote) as pictrs:
        env = _cli_env(tmp_path, url, pictrs.url)
        cmd = [sys.executable, "-m", "warden.cli", "purge", "federated", "--yes", "--rate", "25"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(pictrs.purge_calls.values()) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = sum(pictrs.purge_calls.values())
        assert 12 <= done_before < N_REMOTE, "the run should have been cut off in the middle"
        result = subprocess.run(
            [*cmd[:-2], "--rate", "0"], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert set(pictrs.purge_calls) == remote  # nothing skipped, no local upload touched
        assert max(pictrs.purge_calls.values()) == 1  # nothing purged twice
        assert pictrs.aliases == local


def test_wrong_api_key_stops_with_a_clear_message(lemmy_db, tmp_path):
    url, local, remote = lemmy_db
    with PictrsInternalDouble(local | remote, api_key="right") as pictrs:
        result = CliRunner().invoke(
            app, ["purge", "federated", "--yes"], env=_cli_env(tmp_path, url, pictrs.url)
        )
        assert result.exit_code == 1
        assert "refused the API key" in result.output
        assert pictrs.aliases == local | remote


def test_rate_limiter_spaces_calls():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert now[0] == pytest.approx(1.0)
