"""`warden rules lint` and `warden rules check` through Typer's runner, against the Lemmy double
(Lemmy 0.19.3, 0.19.5 and 1.0)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers.lemmy_double import VERSIONS, LemmyDouble, running_double
from warden.cli import app

runner = CliRunner()

RULES = """\
uploads = "on"

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]
rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }
"""


@pytest.fixture(params=VERSIONS)
def double(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


def _config(tmp_path: Path, double: LemmyDouble, text: str = RULES) -> Path:
    rules = tmp_path / "rules.toml"
    rules.write_text(text)
    config = tmp_path / "warden.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[lemmy]\nurl = "{double.url}"\nbot_token = "bot"\n'
        f'[rules]\nfile = "{rules}"\n'
    )
    return config


def test_check_explains_a_refusal_and_a_pass(tmp_path: Path, double: LemmyDouble) -> None:
    double.add_user("bot", "warden_bot", timedelta(days=900), admin=True)
    double.add_user("t1", "newbie", timedelta(days=2, hours=1), comments=1)
    double.add_user("t2", "middling", timedelta(days=10), comments=6)
    config = _config(tmp_path, double)
    args = ["--config", str(config), "rules", "check", "--activity", "upload_image", "--user"]
    refused = runner.invoke(app, [*args, "newbie"])
    assert refused.exit_code == 1, refused.output
    assert "refused (requirement_not_met)" in refused.output
    assert "account must be 7 days old; yours is 2 days" in refused.output
    allowed = runner.invoke(app, [*args, "middling"])
    assert allowed.exit_code == 0, allowed.output
    assert "allowed: upload_image" in allowed.output
    assert "rate limit 3 times per 1 day: 0 used" in allowed.output
    missing = runner.invoke(app, [*args, "nobody"])
    assert missing.exit_code == 2 and "no person 'nobody'" in missing.output


def test_check_when_lemmy_is_down(tmp_path: Path, double: LemmyDouble) -> None:
    config = _config(tmp_path, double)
    double.down = True
    result = runner.invoke(
        app, ["--config", str(config), "rules", "check", "-a", "upload_image", "-u", "x"]
    )
    assert result.exit_code == 2 and "Lemmy" in result.output


def test_lint(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(RULES)
    result = runner.invoke(app, ["rules", "lint", str(good)])
    assert result.exit_code == 0 and "ok (uploads on; rules for: upload_image)" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace('"comments >= 5"', '"coments >= 5"'))
    result = runner.invoke(app, ["rules", "lint", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4: rules.upload_image: unknown fact 'coments'" in result.output


def test_lint_warns_that_anyone_can_become_a_moderator(tmp_path: Path) -> None:
    """Item 4: community creation is open on Lemmy by default, so trusting moderators
    without gating create_community trusts everyone."""
    trusting = tmp_path / "trusting.toml"
    trusting.write_text('uploads = "moderators"\n')
    result = runner.invoke(app, ["rules", "lint", str(trusting)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output
    assert "any account can become a moderator by creating a community" in result.output
    assert 'moderator_community_min_age = "30d"' in result.output
    gated = tmp_path / "gated.toml"
    gated.write_text(
        'uploads = "moderators"\n[rules.create_community]\nall = ["account_age >= 30d"]\n'
    )
    result = runner.invoke(app, ["rules", "lint", str(gated)])
    assert result.exit_code == 0 and "warning" not in result.output


def test_check_counts_only_moderators_of_old_enough_communities(
    tmp_path: Path, double: LemmyDouble
) -> None:
    double.add_user("bot", "warden_bot", timedelta(days=900), admin=True)
    double.add_community(1, timedelta(days=2))
    double.add_community(2, timedelta(days=120))
    double.add_user("t1", "squatter", timedelta(days=300), moderates=[1])
    double.add_user("t2", "keeper", timedelta(days=300), moderates=[2])
    config = _config(
        tmp_path, double, 'uploads = "moderators"\nmoderator_community_min_age = "30d"\n'
    )
    args = ["--config", str(config), "rules", "check", "--activity", "upload_image", "--user"]
    refused = runner.invoke(app, [*args, "squatter"])
    assert refused.exit_code == 1, refused.output
    assert "refused (uploads_disabled)" in refused.output
    assert "roles user" in refused.output and "0 of them older" in refused.output
    allowed = runner.invoke(app, [*args, "keeper"])
    assert allowed.exit_code == 0, allowed.output
