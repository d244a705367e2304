"""`warden db`, `warden tokens` and `warden evidence` through Typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from warden.cli import app
from warden.store.database import Database
from warden.store.quarantine import EvidenceStore, decode_key, decrypt_export, generate_key

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDEN_CONFIG", raising=False)
    return tmp_path / "data"


def test_db_upgrade_and_current(env):
    assert runner.invoke(app, ["db", "current"]).output.strip() == "none"
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    head = ScriptDirectory.from_config(Database("sqlite://").alembic_config()).get_current_head()
    assert runner.invoke(app, ["db", "current"]).output.strip() == head


def test_tokens_create_list_revoke(env):
    created = runner.invoke(app, ["tokens", "create", "bot"])
    assert created.exit_code == 0, created.output
    plaintext = created.output.strip().splitlines()[-1]
    assert plaintext.startswith("wdn_")
    listed = runner.invoke(app, ["tokens", "list"]).output
    assert "bot" in listed and "active" in listed and plaintext not in listed
    assert runner.invoke(app, ["tokens", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["tokens", "list"]).output
    missing = runner.invoke(app, ["tokens", "revoke", "99"])
    assert missing.exit_code == 1 and "no token 99" in missing.output


def test_tokens_create_with_scopes(env):
    default = runner.invoke(app, ["tokens", "create", "scanner"])
    assert default.exit_code == 0 and "scopes scan)" in default.output
    both = runner.invoke(app, ["tokens", "create", "ops", "--scope", "scan", "--scope", "admin"])
    assert both.exit_code == 0 and "scopes scan,admin)" in both.output
    admin = runner.invoke(app, ["tokens", "create", "reloader", "--scope", "admin"])
    assert admin.exit_code == 0 and "scopes admin)" in admin.output
    bad = runner.invoke(app, ["tokens", "create", "x", "--scope", "root"])
    assert bad.exit_code == 2 and "unknown scope 'root'" in bad.output
    listed = runner.invoke(app, ["tokens", "list"]).output.splitlines()
    assert [line.split("\t")[1:3] for line in listed] == [
        ["scanner", "scan"],
        ["ops", "scan,admin"],
        ["reloader", "admin"],
    ]


def test_evidence_commands(env, tmp_path, monkeypatch):
    key = generate_key()
    monkeypatch.setenv("WARDEN_EVIDENCE__KEY", key)
    store = EvidenceStore(env / "evidence", decode_key(key))
    item_id = store.preserve(b"refused media", {"source": "upload", "decision": "reject"})
    assert item_id in runner.invoke(app, ["evidence", "list"]).output
    shown = runner.invoke(app, ["evidence", "show", item_id])
    assert shown.exit_code == 0 and '"decision": "reject"' in shown.output
    exported = runner.invoke(app, ["evidence", "export", item_id, str(tmp_path / "report")])
    assert exported.exit_code == 0, exported.output
    one_time = exported.output.strip().splitlines()[-1]
    assert decrypt_export(tmp_path / "report" / item_id, one_time) == b"refused media"
    assert "pruned 0" in runner.invoke(app, ["evidence", "prune"]).output
    assert len(decode_key(runner.invoke(app, ["evidence", "keygen"]).output)) == 32
    bad = runner.invoke(app, ["evidence", "show", "nope"])
    assert bad.exit_code == 1 and "no evidence item" in bad.output


def test_a_bad_evidence_key_is_a_clear_error(env, monkeypatch):
    monkeypatch.setenv("WARDEN_EVIDENCE__KEY", "too-short")
    result = runner.invoke(app, ["evidence", "list"])
    assert result.exit_code == 2 and "evidence.key" in result.output
