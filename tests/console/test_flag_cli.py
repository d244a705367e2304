"""`warden flag` runs the console's flag chain: the same preview (`--dry-run`), the same
five steps, checked in the same Lemmy and pict-rs doubles, banks, evidence store and
invite ledger as the console's own flag (test_console_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.console.world import World, staged
from warden.cli import app
from warden.store.banks import BankStore
from warden.store.invites import InviteStore

runner = CliRunner()


@pytest.fixture(params=["0.19.5", "1.0"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, astronaut: Image.Image
) -> Iterator[World]:
    yield from staged(request.param, tmp_path, astronaut)


def _env(world: World) -> dict[str, str]:
    s = world.services.settings
    return {
        "WARDEN_DATA_DIR": str(s.data_dir),
        "WARDEN_LEMMY__URL": world.lemmy.url,
        "WARDEN_LEMMY__API": world.lemmy.api,
        "WARDEN_LEMMY__BOT_TOKEN": s.lemmy.bot_token.get_secret_value(),  # type: ignore[union-attr]
        "WARDEN_PICTRS__URL": world.pictrs.url,
        "WARDEN_PICTRS__API_KEY": "pictrs-key",
    }


def test_flag_ban_purge_does_what_the_console_flag_does(world: World) -> None:
    ids, env = world.ids, _env(world)
    sha = world.services.decisions.get(ids["reviewed"]).verdict.sha256  # type: ignore[union-attr]
    store = BankStore(world.services.database)
    args = ["flag", str(ids["reviewed"]), "--purge", "--ban", "--reason", "CSAM attack wave"]

    preview = runner.invoke(app, [*args, "--dry-run"], env=env)
    assert preview.exit_code == 0, preview.output
    out = preview.output
    for step in ("bank", "evidence", "purge", "ban", "strike"):
        assert f"  {step}: " in out, step
    assert "mallory" in out and "eve" in out and "alice (invited mallory)" in out
    assert "earlier-1.jpg" in out and ("reviewed-1.jpg" in out or "reviewed-2.jpg" in out)
    assert "nothing was done" in out
    # the console's preview of the same decision names the same copies and people
    plan = world.services.console.service.chain.plan(ids["reviewed"])  # type: ignore[union-attr]
    assert all(a in out for a in plan.aliases) and all(u in out for u in plan.uploaders)
    assert world.lemmy.bans == [] and world.pictrs.purge_calls == {}
    assert store.lookup(sha) == []

    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    for step in ("bank", "evidence", "purge", "ban", "strike"):
        assert f"  {step}: done" in done.output, step
    assert "banned: eve, mallory" in done.output
    # 1. banked
    assert any(e.bank.endswith("-sha256") for e in store.lookup(sha))
    # 2. evidence kept, naming the decision
    evidence = world.services.evidence
    assert evidence is not None
    kept = [evidence.show(i).metadata for i in evidence.ids()]
    assert any(m.get("decision_id") == ids["reviewed"] for m in kept)
    # 3. every copy purged, the unrelated files left
    assert not {"reviewed-1.jpg", "reviewed-2.jpg", "earlier-1.jpg"} & world.pictrs.aliases
    assert {"other-1.jpg", "matched-1.jpg"} <= world.pictrs.aliases
    # 4. banned through Lemmy with content removed
    assert {world.lemmy.account_by_id(pid).name for pid, _ in world.lemmy.bans} == {
        "mallory",
        "eve",
    }
    field = "remove_data" if world.lemmy.api == "v3" else "remove_or_restore_data"
    assert all(form[field] is True for form in world.lemmy.ban_forms)
    # 5. the inviter struck, once
    ledger: InviteStore = world.services.console.service.invites  # type: ignore[union-attr]
    assert ledger.find("alice").strikes == 1  # type: ignore[union-attr]

    again = runner.invoke(app, args, env=env)  # every step is safe to repeat
    assert again.exit_code == 0, again.output
    assert "banned: nobody new" in again.output
    assert ledger.find("alice").strikes == 1  # type: ignore[union-attr]
    assert len(evidence.ids()) == len(kept)


def test_flag_of_a_file_keeps_it_as_evidence_before_purging_pictrs_copy(
    world: World, tmp_path: Path
) -> None:
    """A file named on the command line has no decision: it is its own evidence, and
    pict-rs's copy is found by SHA-256 (pict-rs 0.5's listing)."""
    path = tmp_path / "seen-elsewhere.jpg"
    path.write_bytes(world.data["other"])
    env = _env(world)
    preview = runner.invoke(app, ["flag", str(path), "--purge", "--dry-run"], env=env)
    assert preview.exit_code == 0, preview.output
    assert "other-1.jpg" in preview.output and "  ban:" not in preview.output
    done = runner.invoke(app, ["flag", str(path), "--purge", "--reason", "hotline"], env=env)
    assert done.exit_code == 0, done.output
    assert "  evidence: done — preserved as" in done.output
    assert "other-1.jpg" not in world.pictrs.aliases and world.lemmy.bans == []
    evidence = world.services.evidence
    assert evidence is not None
    items = [evidence.show(i) for i in evidence.ids()]
    assert [evidence.media(i.id) for i in items] == [world.data["other"]]


def test_flag_without_a_pictrs_key_purges_nothing_and_exits_1(world: World) -> None:
    """Without pictrs.api_key pict-rs can neither hand over the file (no evidence) nor
    purge it: the preview says so, the purge step fails (nothing is purged before the
    evidence is kept), the exit status is 1, and the bank step is done regardless."""
    env = _env(world)
    env.pop("WARDEN_PICTRS__API_KEY")
    args = ["flag", str(world.ids["other"]), "--purge"]
    preview = runner.invoke(app, [*args, "--dry-run"], env=env)
    assert "problem: pictrs.api_key is not set: nothing can be purged" in preview.output
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    assert "  bank: done" in result.output and "  purge: FAILED" in result.output
    assert "other-1.jpg" in world.pictrs.aliases
