"""One handler turns every Warden error into `error: <message>` on stderr and an exit
status (cli/context.py): 2 when nothing was done, 1 when refused or failed, and
commands whose status is their answer say 2 for "could not tell"."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from warden.cli import app
from warden.cli.context import WardenGroup, on_error
from warden.docs import cli_rows
from warden.errors import ConfigError, InputError, NotFound, PictrsError

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    return tmp_path


def _probe() -> typer.Typer:
    """A two-command app on the real root group: `fail KIND` raises, `answer KIND` raises
    after saying its exit status is its answer."""
    probe = typer.Typer(cls=WardenGroup, pretty_exceptions_enable=False)
    raised = {
        "config": ConfigError("set lemmy.bot_token first"),
        "input": InputError("bad [red]value[/red]"),
        "missing": NotFound("no token 7"),
        "upstream": PictrsError("pict-rs refused the API key"),
        "value": ValueError("unknown scope 'root'"),
        "os": FileNotFoundError(2, "No such file or directory", "list.csv"),
        "bug": RuntimeError("a bug, not a refusal"),
    }

    @probe.command()
    def fail(kind: str) -> None:
        raise raised[kind]

    @probe.command()
    def answer(ctx: typer.Context, kind: str) -> None:
        on_error(ctx, exit_code=2, hint="resume with the same command")
        raise raised[kind]

    return probe


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("config", 2, "error: set lemmy.bot_token first"),
        ("input", 2, "error: bad [red]value[/red]"),  # printed as typed, not as markup
        ("missing", 1, "error: no token 7"),
        ("upstream", 1, "error: pict-rs refused the API key"),
        ("value", 2, "error: unknown scope 'root'"),  # a layer not raising InputError yet
        ("os", 1, "No such file or directory: 'list.csv'"),
    ],
)
def test_each_error_gets_its_exit_status_and_one_line(kind, status, message):
    result = runner.invoke(_probe(), ["fail", kind])
    assert result.exit_code == status
    assert message in result.stderr and result.stdout == ""
    assert "Traceback" not in result.output


def test_a_command_whose_status_is_its_answer_says_it_could_not_tell():
    result = runner.invoke(_probe(), ["answer", "upstream"])
    assert result.exit_code == 2  # 1 would read as the answer
    assert "pict-rs refused the API key (resume with the same command)" in result.stderr


def test_a_bug_is_not_dressed_up_as_a_refusal():
    result = runner.invoke(_probe(), ["fail", "bug"])
    assert isinstance(result.exception, RuntimeError)
    assert "error:" not in result.output


def test_settings_that_cannot_be_read_stop_every_command(env):
    result = runner.invoke(app, ["--config", str(env / "missing.toml"), "config", "show"])
    assert result.exit_code == 2 and "error:" in result.stderr and "missing.toml" in result.stderr


def test_warden_errors_from_real_commands(env):
    revoked = runner.invoke(app, ["tokens", "revoke", "99"])
    assert revoked.exit_code == 1 and "error: no token 99" in revoked.stderr
    flagged = runner.invoke(app, ["flag", "[red]nonsense"])
    assert flagged.exit_code == 1
    assert "'[red]nonsense' is neither a file" in flagged.stderr  # markup-like text kept
    both = runner.invoke(app, ["rescan", "--folder", str(env), "--pictrs"])
    assert both.exit_code == 2 and "exactly one" in both.stderr


def test_every_command_has_help():
    for path, _ in cli_rows(typer.main.get_command(app)):
        args = [*path.split()[1:], "--help"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_python_dash_m_runs_the_same_app(env):
    done = subprocess.run(
        [sys.executable, "-m", "warden.cli", "version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip()
