"""`warden purge federated` against a real PostgreSQL holding each Lemmy version's schema
(tests/servers/lemmy_schema.py) and the pict-rs double of each version
(tests/servers/pictrs_internal.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import pytest
from typer.testing import CliRunner

from tests.servers import lemmy_schema
from tests.servers.pictrs_internal import PictrsInternalDouble
from warden.adapters.lemmy_db import LemmyDatabase, alias_of
from warden.adapters.pictrs import PictrsAdmin
from warden.cli import app
from warden.jobs.purge import RateLimiter, plan_purge, run_purge
from warden.store.purge_ledger import PurgeLedger

pytestmark = pytest.mark.postgres

HOST = "lemmy.example"
RUN_ON = datetime(2024, 3, 1)  # when 0.19's upload table began (diesel: no zone)
BEFORE = datetime(2023, 6, 1, tzinfo=UTC)  # stored before Lemmy recorded uploads
AFTER = datetime(2024, 6, 1, tzinfo=UTC)
N_FED = 12


@dataclass
class World:
    """A Lemmy database of one version beside a pict-rs double of one version."""

    conn: psycopg.Connection
    pictrs: PictrsInternalDouble
    lemmy: str
    url: str
    kept: set[str] = field(default_factory=set)
    purged: set[str] = field(default_factory=set)
    kept_on_04: set[str] = field(default_factory=set)  # purged only where pict-rs lists files

    def image(self, alias: str, host: str = HOST) -> str:
        return lemmy_schema.image_url(host, alias, self.lemmy)

    def person(self, local: bool, avatar: str | None = None) -> int:
        return int(
            self.conn.execute(
                "INSERT INTO person (name, avatar, local) VALUES ('p', %s, %s) RETURNING id",
                (avatar, local),
            ).fetchone()[0]
        )

    def local_user(self) -> tuple[int, int]:
        person = self.person(True)
        user = self.conn.execute(
            "INSERT INTO local_user (person_id) VALUES (%s) RETURNING id", (person,)
        ).fetchone()[0]
        return int(user), person

    def store(self, alias: str, data: bytes | None = None, created: datetime = AFTER) -> None:
        self.pictrs.add(data or alias.encode(), alias, created_at=created)

    def upload(self, alias: str, data: bytes | None = None, created: datetime = AFTER) -> None:
        """A local user's upload, recorded as the version records it."""
        self.store(alias, data, created)
        user, person = self.local_user()
        if self.lemmy == "0.19.3":
            self.conn.execute(
                "INSERT INTO image_upload (local_user_id, pictrs_alias, pictrs_delete_token)"
                " VALUES (%s, %s, 't')",
                (user, alias),
            )
        elif self.lemmy == "0.19.5":
            self.conn.execute(
                "INSERT INTO local_image (local_user_id, pictrs_alias, pictrs_delete_token)"
                " VALUES (%s, %s, 't')",
                (user, alias),
            )
        else:
            self.conn.execute(
                "INSERT INTO local_image (pictrs_alias, person_id) VALUES (%s, %s)",
                (alias, person),
            )

    def post(
        self,
        local: bool,
        url: str | None = None,
        thumbnail: str | None = None,
        body: str | None = None,
    ) -> int:
        creator = self.person(local)
        return int(
            self.conn.execute(
                "INSERT INTO post (name, url, thumbnail_url, body, creator_id, local)"
                " VALUES ('p', %s, %s, %s, %s, %s) RETURNING id",
                (url, thumbnail, body, creator, local),
            ).fetchone()[0]
        )

    def cached_thumbnail(
        self, alias: str, *, local_post: bool, data: bytes | None = None, created: datetime = AFTER
    ) -> None:
        """The thumbnail Lemmy caches for a post's link, recorded as the version records it."""
        self.store(alias, data, created)
        post = self.post(local_post, url="https://elsewhere.example/a", thumbnail=self.image(alias))
        if (
            self.lemmy == "0.19.5"
        ):  # local_user_id NULL: 0.19.5 crates/api_common/src/request.rs:309-319
            self.conn.execute(
                "INSERT INTO local_image (pictrs_alias, pictrs_delete_token) VALUES (%s, 't')",
                (alias,),
            )
        elif self.lemmy == "1.0":  # 1.0.0-beta.1 crates/api/api_utils/src/request.rs:505-510
            creator = self.conn.execute("SELECT creator_id FROM post WHERE id = %s", (post,))
            self.conn.execute(
                "INSERT INTO local_image (pictrs_alias, person_id, thumbnail_for_post_id)"
                " VALUES (%s, %s, %s)",
                (alias, creator.fetchone()[0], post),
            )


def _world(postgres, lemmy: str, pictrs: PictrsInternalDouble) -> World:
    url = postgres.create_database(f"lemmy_{os.getpid()}_{time.monotonic_ns()}")
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    conn.execute(lemmy_schema.ddl(lemmy))
    for version, run_on in lemmy_schema.migrations(RUN_ON):
        conn.execute(
            "INSERT INTO __diesel_schema_migrations (version, run_on) VALUES (%s, %s)",
            (version, run_on),
        )
    return World(conn, pictrs, lemmy, url)


def populate(world: World) -> World:
    """Local uploads, pre-0.19 local media, federated thumbnails, a byte-identical sibling, orphans."""
    w = world
    for i in range(3):
        w.upload(f"up-{i}.webp")
    w.post(True, url=w.image("up-0.webp"))
    w.person(True, avatar=w.image("up-1.webp"))
    # a pre-0.19 local avatar: in no table, referenced only by the local person
    w.store("old-avatar.png", created=BEFORE)
    w.person(True, avatar=w.image("old-avatar.png"))
    # pre-0.19 media linked from local markdown and the site: in no table
    w.store("old-in-comment.png")
    w.conn.execute(
        "INSERT INTO comment (content, local) VALUES (%s, true)",
        (f"look ![x]({w.image('old-in-comment.png')}?format=webp) here",),
    )
    w.store("site-icon.png")
    w.conn.execute("INSERT INTO site (name, icon) VALUES ('s', %s)", (w.image("site-icon.png"),))
    for alias in ("pm.png", "emoji.png", "sidebar.png", "relative.png"):
        w.store(alias)  # stored after uploads were recorded: only a local reference keeps them
    w.conn.execute(
        "INSERT INTO private_message (content, local) VALUES (%s, true)",
        (f"![]({w.image('pm.png')})",),
    )
    w.conn.execute(
        "INSERT INTO custom_emoji (shortcode, image_url) VALUES ('e', %s)", (w.image("emoji.png"),)
    )
    sidebar = "sidebar" if w.lemmy == "1.0" else "description"
    w.conn.execute(
        f"INSERT INTO community (name, {sidebar}, local) VALUES ('c', %s, true)",
        (f"rules ![]({w.image('sidebar.png')})",),
    )
    route = "api/v4/image" if w.lemmy == "1.0" else "pictrs/image"
    w.conn.execute(
        "INSERT INTO comment (content, local) VALUES (%s, true)", (f"![](/{route}/relative.png)",)
    )
    w.kept |= {"pm.png", "emoji.png", "sidebar.png", "relative.png"}
    w.cached_thumbnail("local-thumb.webp", local_post=True)
    # a federated post's thumbnail byte-identical to a local upload: one file, two aliases
    w.cached_thumbnail("sibling-thumb.webp", local_post=False, data=b"up-2.webp")
    w.store("orphan-old.png", created=BEFORE)  # origin unknown: kept
    w.kept |= {
        "up-0.webp",
        "up-1.webp",
        "up-2.webp",
        "old-avatar.png",
        "old-in-comment.png",
        "site-icon.png",
        "local-thumb.webp",
        "sibling-thumb.webp",
        "orphan-old.png",
    }
    for i in range(N_FED):
        w.cached_thumbnail(f"fed-{i:02}.jpeg", local_post=False)
        w.purged.add(f"fed-{i:02}.jpeg")
    w.cached_thumbnail("fed-old.jpeg", local_post=False, created=BEFORE)
    w.purged.add("fed-old.jpeg")
    # stored after uploads were recorded, in no table: not a local upload
    w.store("orphan-new.png")
    w.store("remote-avatar.png")
    w.person(False, avatar=w.image("remote-avatar.png"))
    w.kept_on_04 |= {"orphan-new.png", "remote-avatar.png"}
    # another instance's image URL is not ours
    w.post(False, thumbnail=w.image("theirs.png", "other.example"))
    return w


@pytest.fixture(params=lemmy_schema.VERSIONS)
def lemmy_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=("0.4", "0.5.6", "0.5.7"))
def pictrs_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(postgres, lemmy_version: str, pictrs_version: str) -> Iterator[World]:
    with PictrsInternalDouble(version=pictrs_version) as pictrs:
        w = populate(_world(postgres, lemmy_version, pictrs))
        yield w
        w.conn.close()


def _expected_left(w: World) -> set[str]:
    left = w.kept | (w.kept_on_04 if w.pictrs.version == "0.4" else set())
    return left


def test_purge_removes_exactly_the_federated_files(world: World, tmp_path) -> None:
    """0.19.4+ cached thumbnails (NULL local_user_id) and 1.0 thumbnail rows are purged;
    pre-0.19 local media referenced by local content, byte-identical siblings of local
    uploads and files of unknown origin are kept; 1.0's /api/v4/image/ URLs are read."""
    lemmy = LemmyDatabase(world.url)
    ledger = PurgeLedger(tmp_path / "ledger.sqlite")
    with PictrsAdmin(world.pictrs.url, "pictrs-key") as client:
        plan = plan_purge(lemmy, ledger, [HOST], client)
        report = run_purge(lemmy, client, ledger, rate=0, protected=plan.protected)
    lemmy.close()
    assert report.failed == 0, report.errors
    assert world.pictrs.aliases == _expected_left(world)
    assert max(world.pictrs.purge_calls.values()) == 1
    assert set(world.pictrs.purge_calls) <= world.purged | world.kept_on_04
    assert "sibling-thumb.webp" not in world.pictrs.purge_calls
    if world.pictrs.version == "0.4":
        assert plan.listed is None and "0.4" in " ".join(plan.notes)
    else:
        assert (
            plan.listed == len(world.kept | world.purged | world.kept_on_04) - 1
        )  # one file shared
        assert plan.unattributed == 1  # orphan-old.png


def test_alias_of_reads_both_url_forms():
    assert alias_of("https://lemmy.example/pictrs/image/abc.jpeg?format=webp", [HOST]) == "abc.jpeg"
    assert alias_of("https://Lemmy.Example/api/v4/image/abc.jpeg", [HOST]) == "abc.jpeg"
    assert alias_of("https://lemmy.example/api/v4/image/proxy?url=x", [HOST]) is None
    assert alias_of("https://other.example/pictrs/image/abc.jpeg", [HOST]) is None
    assert alias_of("https://lemmy.example/some/page", [HOST]) is None


@pytest.mark.parametrize("pictrs_version", ["0.4", "0.5.6", "0.5.7"])
def test_pictrs_client_reads_each_version(pictrs_version: str) -> None:
    """exists() is false for an unknown alias (pict-rs answers 200 with no aliases), a purge
    of a gone alias is 'already gone' whether pict-rs says 400 (<= 0.5.6) or 404 (0.5.7+)."""
    with (
        PictrsInternalDouble({"a.png"}, version=pictrs_version) as pictrs,
        PictrsAdmin(pictrs.url, "pictrs-key") as client,
    ):
        assert client.exists("a.png") and not client.exists("never.png")
        assert client.purge("a.png").purged
        gone = client.purge("a.png")
        assert gone.purged is False
        assert not client.exists("a.png")
        assert client.identifier("a.png") is None


def test_a_read_only_pictrs_is_an_error_not_gone() -> None:
    from warden.errors import PictrsError

    with (
        PictrsInternalDouble({"a.png"}, version="0.5.6", read_only=True) as pictrs,
        PictrsAdmin(pictrs.url, "pictrs-key") as client,
        pytest.raises(PictrsError, match="read-only"),
    ):
        client.purge("a.png")


@pytest.mark.parametrize("pictrs_version", ["0.4", "0.5.6", "0.5.7"])
def test_stored_files_pages_through_everything(pictrs_version: str) -> None:
    from warden.errors import HashListingUnavailable

    with (
        PictrsInternalDouble({f"f{i:03}.png" for i in range(45)}, version=pictrs_version) as p,
        PictrsAdmin(p.url, "pictrs-key") as client,
    ):
        p.add(b"f000.png", "f000-again.png")  # same bytes: one file, two aliases
        if pictrs_version == "0.4":
            with pytest.raises(HashListingUnavailable):
                list(client.stored_files(page_size=10))
            return
        files = list(client.stored_files(page_size=10))
        assert len(files) == 45 and p.hash_pages == 5
        import hashlib

        first = next(f for f in files if "f000.png" in f.aliases)
        assert set(first.aliases) == {"f000.png", "f000-again.png"}
        assert first.sha256 == hashlib.sha256(b"f000.png").hexdigest()


def test_unknown_schema_is_refused(postgres, tmp_path) -> None:
    url = postgres.create_database(f"lemmy_old_{os.getpid()}_{time.monotonic_ns()}")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE post (id serial PRIMARY KEY, url text, local boolean)")
    with PictrsInternalDouble({"a.png"}) as pictrs:
        result = CliRunner().invoke(
            app, ["purge", "federated", "--yes"], env=_cli_env(tmp_path, url, pictrs.url)
        )
    assert result.exit_code == 1
    assert "neither local_image nor image_upload" in result.output
    assert not pictrs.purge_calls


@pytest.mark.parametrize("lemmy_version", ["0.19.5"])
@pytest.mark.parametrize("pictrs_version", ["0.5.7"])
def test_a_local_upload_made_mid_run_is_never_purged(world: World, tmp_path) -> None:
    victim = "fed-05.jpeg"
    lemmy = LemmyDatabase(world.url)
    ledger = PurgeLedger(tmp_path / "ledger.sqlite")
    with PictrsAdmin(world.pictrs.url, "pictrs-key") as client:
        plan = plan_purge(lemmy, ledger, [HOST], client)
        # a byte-identical local upload arrives after planning: pict-rs adds it to the file
        user, _ = world.local_user()
        world.pictrs.add(victim.encode(), "new-upload.jpeg")
        world.conn.execute(
            "INSERT INTO local_image (local_user_id, pictrs_alias, pictrs_delete_token)"
            " VALUES (%s, 'new-upload.jpeg', 't')",
            (user,),
        )
        report = run_purge(lemmy, client, ledger, rate=0, protected=plan.protected)
    lemmy.close()
    assert report.skipped_local == 1
    assert {victim, "new-upload.jpeg"} <= world.pictrs.aliases
    assert victim not in world.pictrs.purge_calls


def _cli_env(tmp_path, lemmy_url: str, pictrs_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_FEDERATED__LEMMY_DATABASE_URL": lemmy_url,
        "WARDEN_FEDERATED__LOCAL_HOSTS": f'["{HOST}"]',
        "WARDEN_PICTRS__URL": pictrs_url,
        "WARDEN_PICTRS__API_KEY": "pictrs-key",
    }


@pytest.mark.parametrize("lemmy_version", ["1.0"])
@pytest.mark.parametrize("pictrs_version", ["0.5.6"])
def test_dry_run_changes_nothing(world: World, tmp_path) -> None:
    before = set(world.pictrs.aliases)
    result = CliRunner().invoke(
        app,
        ["purge", "federated", "--dry-run"],
        env=_cli_env(tmp_path, world.url, world.pictrs.url),
    )
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output and "Lemmy schema 1.0" in result.output
    assert world.pictrs.aliases == before and not world.pictrs.purge_calls


@pytest.mark.parametrize("lemmy_version", ["0.19.5"])
@pytest.mark.parametrize("pictrs_version", ["0.5.6"])
def test_keep_unreferenced_purges_only_evidenced_files(world: World, tmp_path) -> None:
    """A dry run's plan never outlives its options: planned without the flag, run with it."""
    env = _cli_env(tmp_path, world.url, world.pictrs.url)
    dry = CliRunner().invoke(app, ["purge", "federated", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    run = CliRunner().invoke(app, ["purge", "federated", "--yes", "--keep-unreferenced"], env=env)
    assert run.exit_code == 0, run.output
    assert "no longer federated" in run.output
    assert set(world.pictrs.purge_calls) == world.purged
    assert world.pictrs.aliases == world.kept | world.kept_on_04


@pytest.mark.parametrize("lemmy_version", ["0.19.3", "1.0"])
@pytest.mark.parametrize("pictrs_version", ["0.5.7"])
def test_killed_run_resumes_without_repeating_or_skipping(world: World, tmp_path) -> None:
    env = _cli_env(tmp_path, world.url, world.pictrs.url)
    cmd = [sys.executable, "-m", "warden.cli", "purge", "federated", "--yes", "--rate", "5"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(world.pictrs.purge_calls.values()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = sum(world.pictrs.purge_calls.values())
    to_purge = world.purged | world.kept_on_04
    assert 4 <= done_before < len(to_purge), "the run should have been cut off in the middle"
    result = subprocess.run(
        [*cmd[:-2], "--rate", "0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(world.pictrs.purge_calls) == to_purge  # nothing skipped, nothing local touched
    assert max(world.pictrs.purge_calls.values()) == 1  # nothing purged twice
    assert world.pictrs.aliases == world.kept


@pytest.mark.parametrize("lemmy_version", ["0.19.5"])
@pytest.mark.parametrize("pictrs_version", ["0.5.7"])
def test_wrong_api_key_stops_with_a_clear_message(world: World, tmp_path) -> None:
    env = {**_cli_env(tmp_path, world.url, world.pictrs.url), "WARDEN_PICTRS__API_KEY": "wrong"}
    before = set(world.pictrs.aliases)
    result = CliRunner().invoke(app, ["purge", "federated", "--yes"], env=env)
    assert result.exit_code == 1
    assert "refused the API key" in result.output
    assert world.pictrs.aliases == before


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
