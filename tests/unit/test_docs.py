"""The reference pages in docs/ are what the code says, and everything is described."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from warden.cli import app
from warden.docs import cli_rows, error_classes, error_meaning, pages

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLI = typer.main.get_command(app)


def test_docs_folder_is_up_to_date():
    for name, text in pages(CLI).items():
        path = DOCS / name
        assert path.exists(), f"docs/{name} missing: run `warden docs write`"
        assert path.read_text(encoding="utf-8") == text, (
            f"docs/{name} is stale: run `.venv/bin/warden docs write`"
        )


def test_every_command_says_what_it_does():
    missing = [path for path, text in cli_rows(CLI) if not text]
    assert missing == []


def test_every_error_says_what_it_means():
    """docs/errors.md takes each error's meaning from its own docstring."""
    classes = error_classes()
    assert len(classes) == len(set(classes)) > 40  # the whole family, each once
    missing = [cls.__name__ for cls in classes if not error_meaning(cls)]
    assert missing == []


def test_errors_page_lists_code_status_and_exit_code():
    page = pages(CLI)["errors.md"]
    assert (
        "| `HashListingUnavailable` | `PictrsError` | `pictrs_no_hash_listing` | 502 | 1 |" in page
    )
    assert "| `ConfigError` | `WardenError` | `config_error` | 422 | 2 |" in page


def test_docs_write_check_reports_stale_pages(tmp_path):
    runner = CliRunner()
    stale = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "configuration.md" in stale.output
    written = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path)])
    assert written.exit_code == 0 and "4 page(s) written" in written.output
    fresh = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert fresh.exit_code == 0
    (tmp_path / "cli.md").write_text("edited by hand\n")
    again = runner.invoke(app, ["docs", "write", "--folder", str(tmp_path), "--check"])
    assert again.exit_code == 1 and "cli.md" in again.output
