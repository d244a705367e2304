"""The invite worker and `warden invites` against the Lemmy double, for API v3 (0.19) and v4 (1.0)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.servers.lemmy_double import running_double
from warden.adapters.lemmy import build_lemmy
from warden.cli import app
from warden.config import InviteSettings
from warden.jobs.invites import InviteWorker
from warden.membership.gate import utc_now
from warden.membership.invites import Rights
from warden.store.database import Database
from warden.store.invites import InviteStore


@pytest.fixture(params=["v3", "v4"])
def lemmy(request):
    yield from running_double(request.param)


@pytest.fixture
def world(lemmy, tmp_path):
    lemmy.add_user("t-bot", "warden-bot", timedelta(days=900), admin=True)
    alice = lemmy.add_user("t-alice", "alice", timedelta(days=400), comments=80)
    db = Database(f"sqlite:///{tmp_path / 'warden.db'}")
    db.upgrade()
    settings = InviteSettings(enabled=True, on_invalid_code="deny")
    store = InviteStore(db, settings.policy())
    yield lemmy, store, settings, alice, db
    db.dispose()


async def _pass(lemmy, store, settings, name="w1"):
    client = build_lemmy(lemmy.url, lemmy.api)
    try:
        return await InviteWorker(store, client, "t-bot", settings, worker_id=name).run_once()
    finally:
        await client.http.aclose()


def one_pass(lemmy, store, settings, name="w1"):
    """One worker pass, as `warden invites worker --once` or a poll of `warden serve` runs it."""
    return asyncio.run(_pass(lemmy, store, settings, name))


def facts_of(account):
    from warden.membership.requirements import UserFacts

    return UserFacts(account.id, account.name, account.published, account.comments, account.posts)


def test_valid_code_is_approved_and_others_denied(world):
    lemmy, store, settings, alice, _ = world
    code = store.spend(facts_of(alice), utc_now()).code
    used = store.spend(facts_of(alice), utc_now()).code
    bob = lemmy.apply("bob", f"Hi! alice sent me, code: {code}")
    lemmy.apply("eve", "please let me in")
    lemmy.apply("mal", f"{code}")  # the same code, second applicant
    report = one_pass(lemmy, store, settings)
    assert report.approved == ["bob"] and not report.errors
    assert sorted(n for n, _ in report.denied) == ["eve", "mal"]
    by_app = {a["id"]: a for a in lemmy.applications}
    assert by_app[1]["admin_id"] is not None and by_app[1]["deny_reason"] is None
    # the applicant hears the same neutral reason whatever was wrong ...
    assert by_app[2]["deny_reason"] == by_app[3]["deny_reason"] == settings.deny_reason
    # ... and the detail stays in Warden's audit log
    problems = {
        e.detail["invitee"]: e.detail["problem"]
        for e in store.audit()
        if e.action == "application_refused"
    }
    assert problems == {
        "eve": "the answer holds no invite code",
        "mal": "the invite code was already used",
    }
    assert [n.name for n in store.tree(alice.id)[0].walk()] == ["alice", "bob"]
    assert store.inviter_of(bob.id) == alice.id
    assert store.invite(used).uses == 0  # type: ignore[union-attr]


def test_no_double_approval_across_restarts_and_concurrent_workers(world):
    lemmy, store, settings, alice, _ = world
    code = store.spend(facts_of(alice), utc_now()).code
    lemmy.apply("bob", code)

    async def together() -> None:
        await asyncio.gather(*(_pass(lemmy, store, settings, f"w{i}") for i in range(4)))

    asyncio.run(together())
    one_pass(lemmy, store, settings, "restarted")
    assert lemmy.decisions == [(1, True)]
    assert store.invite(code).uses == 1  # type: ignore[union-attr]


def test_one_application_is_one_guess_and_denials_do_not_help_guessing(world):
    """An answer stuffed with candidate codes tries only the first; unknown, used,
    expired and revoked codes all get the same reason."""
    lemmy, store, settings, alice, _ = world
    now = utc_now()
    valid = store.spend(facts_of(alice), now).code
    unused = store.spend(facts_of(alice), now).code
    revoked = store.spend(facts_of(alice), now).code
    store.revoke(revoked, alice.id, now, "alice")
    lemmy.apply("bob", valid)
    one_pass(lemmy, store, settings)  # bob uses it
    guesses = " ".join(f"{i:022d}" for i in range(50))
    lemmy.apply("mal", f"my codes: {guesses} {unused}")  # a real code, 51st in the answer
    lemmy.apply("eve", "A" * 22)  # unknown
    lemmy.apply("zed", valid)  # used
    lemmy.apply("kim", revoked)  # revoked
    report = one_pass(lemmy, store, settings)
    assert report.approved == [] and sorted(n for n, _ in report.denied) == [
        "eve",
        "kim",
        "mal",
        "zed",
    ]
    assert store.invite(unused).uses == 0  # type: ignore[union-attr]
    denied = [a for a in lemmy.applications if a["deny_reason"] is not None]
    assert len(denied) == 4 and {a["deny_reason"] for a in denied} == {settings.deny_reason}
    audit = {
        e.detail["invitee"]: e.detail for e in store.audit() if e.action == "application_refused"
    }
    assert audit["mal"]["codes_in_answer"] == 51 and "50 more" in audit["mal"]["problem"]
    assert audit["mal"]["tried"] == "000000…"
    assert "not known" in audit["eve"]["problem"]
    assert "already used" in audit["zed"]["problem"]
    assert "revoked" in audit["kim"]["problem"]


def test_leave_mode_leaves_bad_applications_for_a_human(world):
    lemmy, store, _, _, _ = world
    lemmy.apply("eve", "no code, sorry")
    report = one_pass(lemmy, store, InviteSettings(enabled=True))
    assert report.left == [("eve", "the answer holds no invite code")]
    assert lemmy.decisions == [] and lemmy.applications[0]["admin_id"] is None
    one_pass(lemmy, store, InviteSettings(enabled=True))  # read again: audited once
    assert [e.action for e in store.audit()].count("application_refused") == 1


def test_a_ban_in_the_modlog_strikes_the_inviter(world):
    lemmy, store, settings, alice, _ = world
    code = store.spend(facts_of(alice), utc_now()).code
    bob = lemmy.apply("bob", code)
    one_pass(lemmy, store, settings)
    lemmy.ban_event(bob, "spambot")
    report = one_pass(lemmy, store, settings)
    assert report.strikes == [("alice", "bob", 1)]
    account = store.find("alice")
    assert account is not None and account.rights is Rights.SUSPENDED
    assert one_pass(lemmy, store, settings).strikes == []  # the modlog cursor moved on
    tree = store.tree(alice.id)[0]
    assert tree.walk()[1].banned and tree.walk()[1].ban_reason == "spambot"


def test_ban_subtree_bans_exactly_the_subtree(world, tmp_path):
    lemmy, _, settings, alice, db = world
    store = InviteStore(db, InviteSettings(eligibility=[]).policy())  # new accounts invite too
    now = utc_now()
    people = {}
    for name, inviter in [("bob", "alice"), ("dave", "alice"), ("carol", "bob"), ("erin", "carol")]:
        parent = alice if inviter == "alice" else people[inviter]
        store.grant(parent.id, parent.name, 1, "test", "")
        code = store.spend(facts_of(parent), now).code
        people[name] = lemmy.apply(name, code)
        one_pass(lemmy, store, settings)
    env = {
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_LEMMY__URL": lemmy.url,
        "WARDEN_LEMMY__API": lemmy.api,
        "WARDEN_LEMMY__BOT_TOKEN": "t-bot",
    }
    runner = CliRunner()
    dry = runner.invoke(
        app, ["invites", "ban-subtree", "bob", "--reason", "spam wave", "--dry-run"], env=env
    )
    assert dry.exit_code == 0, dry.output
    assert "3 would be banned" in dry.output and lemmy.bans == []
    done = runner.invoke(
        app, ["invites", "ban-subtree", "bob", "--reason", "spam wave", "--yes"], env=env
    )
    assert done.exit_code == 0, done.output
    assert sorted(pid for pid, _ in lemmy.bans) == sorted(
        people[n].id for n in ("bob", "carol", "erin")
    )
    assert {reason for _, reason in lemmy.bans} == {"spam wave"}
    shown = runner.invoke(app, ["invites", "tree", "alice"], env=env)
    assert shown.exit_code == 0
    assert "dave" in shown.output and "BANNED" in shown.output
    assert store.find("alice").strikes == 1  # type: ignore[union-attr]  # bob was alice's invitee


def test_lemmy_1_tree_comes_from_invited_by(world):
    lemmy, store, settings, alice, _ = world
    if lemmy.api != "v4":
        pytest.skip("invited_by_local_user_id is Lemmy 1.0's")
    lemmy.add_user("t-frank", "frank", timedelta(days=1), invited_by=alice.id)
    report = one_pass(lemmy, store, settings)
    assert report.edges == 1
    assert [n.name for n in store.tree(alice.id)[0].walk()] == ["alice", "frank"]


def test_admin_commands_change_balances_and_rights(world, tmp_path):
    lemmy = world[0]
    env = {
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_LEMMY__URL": lemmy.url,
        "WARDEN_LEMMY__BOT_TOKEN": "t-bot",
    }
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["invites", "grant", "alice", "5", "--reason", "helper"], env=env
        ).exit_code
        == 0
    )
    shown = runner.invoke(app, ["invites", "balance", "alice"], env=env)
    assert "balance 5" in shown.output
    runner.invoke(app, ["invites", "revoke-rights", "alice", "--reason", "sold codes"], env=env)
    assert (
        "rights revoked (sold codes)"
        in runner.invoke(app, ["invites", "balance", "alice"], env=env).output
    )
    runner.invoke(app, ["invites", "restore-rights", "alice"], env=env)
    assert "rights active" in runner.invoke(app, ["invites", "balance", "alice"], env=env).output
    audit = runner.invoke(app, ["invites", "audit", "alice"], env=env)
    assert "rights:revoked" in audit.output and "grant" in audit.output


def test_flag_ban_hands_uploaders_to_lemmy_and_strikes_their_inviter(world, tmp_path):
    """`warden flag FILE --ban`: earlier uploads of the media are found in the decisions
    log, their uploaders banned through Lemmy, and whoever invited them gets a strike."""
    from tests.conftest import encode, gradient
    from warden.config import load_settings
    from warden.media.pipeline import ScanContext
    from warden.services import build_scanner
    from warden.store.decisions import DecisionLog

    lemmy, store, settings, alice, db = world
    code = store.spend(facts_of(alice), utc_now()).code
    bob = lemmy.apply("bob", code)
    one_pass(lemmy, store, settings)
    image = tmp_path / "upload.jpg"
    image.write_bytes(encode(gradient(seed=5)))
    verdict = build_scanner(load_settings(None, data_dir=tmp_path)).scan(
        image.read_bytes(), ScanContext(source="upload")
    )
    DecisionLog(db).record(verdict, source="upload", uploader="bob", config_version="t")
    env = {
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_LEMMY__URL": lemmy.url,
        "WARDEN_LEMMY__API": lemmy.api,
        "WARDEN_LEMMY__BOT_TOKEN": "t-bot",
    }
    result = CliRunner().invoke(
        app, ["flag", str(image), "--ban", "--reason", "known bad media"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "banned: bob" in result.output
    assert lemmy.bans == [(bob.id, "known bad media")]
    assert store.find("alice").strikes == 1  # type: ignore[union-attr]
