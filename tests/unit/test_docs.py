"""The reference pages in docs/ are what the code says, and everything is described."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from warden.cli import app
from warden.docs import cli_rows, pages

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_folder_is_up_to_date():
    for name, text in pages().items():
        path = DOCS / name
        assert path.exists(), f"docs/{name} missing: run `warden docs write`"
        assert path.read_text(encoding="utf-8") == text, (
            f"docs/{name} is stale: run `.venv/bin/warden docs write`"
        )


def test_every_command_says_what_it_does():
    missing = [path for path, text in cli_rows() if not text]
    assert missing == []


def test_docs_write_check_reports_stale_pages(tmp_path):
    runner = CliRunner()
    stale = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "configuration.md" in stale.output
    written = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path)])
    assert written.exit_code == 0 and "3 page(s) written" in written.output
    fresh = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert fresh.exit_code == 0
    (tmp_path / "cli.md").write_text("edited by hand\n")
    again = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert again.exit_code == 1 and "cli.md" in again.output
