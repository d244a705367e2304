"""`warden rules lint` and `warden rules check` through Typer's runner, against the Lemmy double."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers.lemmy_double import LemmyDouble, running_double
from warden.cli import app

runner = CliRunner()

RULES = """\
uploads = "on"

[rules.upload_image]
all = ["account_age >= 7d", "comments >= 5"]
rate_limit = { count = 3, per = "1d", unless = "account_age >= 30d" }
"""


@pytest.fixture(params=["v3", "v4"])
def double(request: pytest.FixtureRequest) -> Iterator[LemmyDouble]:
    yield from running_double(request.param)


def _config(tmp_path: Path, double: LemmyDouble) -> Path:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
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
