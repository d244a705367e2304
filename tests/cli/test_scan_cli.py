"""`warden scan` through Typer's runner, on real files and the real model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.conftest import encode, gradient
from warden.cli import app

runner = CliRunner()


def _env(tmp_path):
    return {"WARDEN_DATA_DIR": str(tmp_path / "data")}


def test_scan_json_lines_and_exit_codes(tmp_path, astronaut):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(encode(astronaut))
    (folder / "sub" / "b.png").write_bytes(encode(gradient(), "PNG"))
    result = runner.invoke(app, ["scan", "--json", "--recursive", str(folder)], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a.jpg", "b.png"]
    for row in rows:
        assert {"path", "sha256", "pdq", "pdq_quality", "decision", "reasons", "labels"} <= set(row)
        assert row["decision"] == "accept" and row["reasons"] == []
        assert len(row["pdq"]) == 64
    assert rows[0]["labels"]["FACE_FEMALE"] > 0.5


def test_not_recursive_skips_subfolders(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.png").write_bytes(encode(gradient(), "PNG"))
    (folder / "c.png").write_bytes(encode(gradient(), "PNG"))
    result = runner.invoke(app, ["scan", "--json", str(folder)], env=_env(tmp_path))
    assert len(result.stdout.splitlines()) == 1


def test_refused_file_exits_1_and_names_the_reason(tmp_path):
    bad = tmp_path / "evil.jpg"
    bad.write_bytes(b"<html><script>x</script></html>")
    good = tmp_path / "ok.png"
    good.write_bytes(encode(gradient(), "PNG"))
    result = runner.invoke(app, ["scan", "--json", str(bad), str(good)], env=_env(tmp_path))
    assert result.exit_code == 1
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["evil.jpg"]["decision"] == "reject"
    assert rows["evil.jpg"]["reasons"] == ["unsupported_format"]
    assert rows["ok.png"]["decision"] == "accept"


def test_unreadable_file_exits_2_and_the_run_goes_on(tmp_path):
    good = tmp_path / "ok.png"
    good.write_bytes(encode(gradient(), "PNG"))
    result = runner.invoke(
        app,
        ["scan", "--json", "--workers", "3", str(tmp_path / "missing.jpg"), str(good)],
        env=_env(tmp_path),
    )
    assert result.exit_code == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["decision"] for r in rows] == ["error", "accept"]
    assert rows[0]["pdq"] is None and rows[0]["reasons"]


def test_human_output_has_a_summary(tmp_path):
    good = tmp_path / "ok.png"
    good.write_bytes(encode(gradient(), "PNG"))
    result = runner.invoke(app, ["scan", str(good)], env=_env(tmp_path))
    assert result.exit_code == 0
    assert "accept" in result.output and "warden scan" in result.output


def test_many_files_stream_in_order(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    payload = encode(gradient(96, 64), "PNG")
    for i in range(60):
        (folder / f"{i:03}.png").write_bytes(payload if i % 7 else b"garbage")
    result = runner.invoke(app, ["scan", "--json", "-w", "2", str(folder)], env=_env(tmp_path))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == [f"{i:03}.png" for i in range(60)]
    assert sum(r["decision"] == "reject" for r in rows) == len(range(0, 60, 7))
