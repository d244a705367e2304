"""`warden doctor` against pict-rs settings, the Lemmy double (both APIs) and real nginx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers.edge import Edge
from tests.servers.lemmy_double import LemmyDouble
from tests.servers.nginx import Nginx, free_port
from warden.cli import app
from warden.config import load_settings
from warden.jobs.doctor import PROBLEM, check_lemmy_site, check_pictrs, pictrs_config, probe_nginx

GOOD = """
[server]
api_key = "k3y"
[client]
timeout = 30
[media]
external_validation = "http://warden:8790/pictrs/validate"
max_file_size = 20
[media.video]
enable = false
"""


def _problems(findings):
    return {f.check: f for f in findings if f.status == PROBLEM}


def test_a_well_wired_pictrs_has_no_problems(tmp_path):
    conf = tmp_path / "pict-rs.toml"
    conf.write_text(GOOD)
    settings = load_settings(None, data_dir=tmp_path, pictrs={"api_key": "k3y"})
    assert _problems(check_pictrs(pictrs_config(conf, {}), settings)) == {}


def test_each_pictrs_problem_names_its_fix(tmp_path):
    settings = load_settings(
        None,
        data_dir=tmp_path,
        media={"max_bytes": 10_000_000, "max_side": 8000},
        server={"pictrs_secret": "s3cret", "deadline_ms": 40_000},
    )
    env = {
        "PICTRS__MEDIA__EXTERNAL_VALIDATION": "http://warden:8790/pictrs/validate",
        "PICTRS__MEDIA__IMAGE__MAX_WIDTH": "10000",
        "PICTRS__SERVER__API_KEY": "other",
        "HOME": "/root",
    }
    problems = _problems(check_pictrs(pictrs_config(None, env), settings))
    assert "secret=" in problems["pict-rs validation hook"].fix
    assert "WARDEN_PICTRS__API_KEY" in problems["pict-rs API key"].fix
    assert "PICTRS__MEDIA__MAX_FILE_SIZE=10" in problems["file size limit"].fix
    assert "PICTRS__MEDIA__IMAGE__MAX_WIDTH=8000" in problems["media.image.max_width"].fix
    assert "PICTRS__MEDIA__VIDEO__ENABLE=false" in problems["video"].fix
    assert "below 30000" in problems["deadline vs pict-rs timeout"].fix
    unset = _problems(check_pictrs({"server": {}}, settings))
    assert "EXTERNAL_VALIDATION" in unset["pict-rs validation hook"].fix
    assert "PICTRS__SERVER__API_KEY" in unset["pict-rs API key"].fix


def test_environment_overrides_the_file(tmp_path):
    conf = tmp_path / "pict-rs.toml"
    conf.write_text(GOOD)
    config = pictrs_config(conf, {"PICTRS__MEDIA__EXTERNAL_VALIDATION": "http://elsewhere/x"})
    assert config["media"]["external_validation"] == "http://elsewhere/x"
    assert config["server"]["api_key"] == "k3y"


@pytest.mark.parametrize("api", ["v3", "v4"])
def test_lemmy_settings_at_odds_with_warden(tmp_path, api):
    lemmy = LemmyDouble(api)
    lemmy.start()
    try:
        settings = load_settings(None, data_dir=tmp_path, lemmy={"url": lemmy.url})
        runner = CliRunner()
        env = {"WARDEN_DATA_DIR": str(tmp_path), "WARDEN_LEMMY__URL": lemmy.url}
        result = runner.invoke(app, ["doctor", "--json"], env=env)
        found = {f["check"]: f for f in json.loads(result.output)}
        assert result.exit_code == 1  # no pict-rs settings given: a problem
        assert found["pict-rs settings"]["status"] == "problem"
        if api == "v3":
            assert found["Lemmy image_mode"]["status"] == "info"
        else:
            assert found["Lemmy image_mode"]["status"] == "ok"
            lemmy.local_site |= {"image_mode": "ProxyAllImages", "image_upload_disabled": True}
            site = {"site_view": {"local_site": lemmy.local_site}}
            problems = _problems(check_lemmy_site(site, "v4", settings))
            assert "ProxyAllImages" in problems["Lemmy image_mode"].detail
            assert "rules.uploads" in problems["Lemmy image_upload_disabled"].fix
    finally:
        lemmy.stop()


def test_nginx_probe_tells_an_active_snippet_from_a_missing_one(tmp_path):
    (tmp_path / "edge").mkdir()
    edge = Edge.start(tmp_path / "edge", "v3", 'uploads = "on"\n')
    try:
        active = probe_nginx(edge.url)
        assert active.status == "ok", active.detail
        port = free_port()
        bare = Nginx(
            tmp_path / "bare",
            f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass {edge.lemmy.url}; }} }}",
            [port],
        )
        bare.start()
        try:
            finding = probe_nginx(f"http://127.0.0.1:{port}")
        finally:
            bare.stop()
    finally:
        edge.stop()
    assert finding.status == "problem" and "warden.conf" in finding.fix


def test_doctor_exit_code_and_table(tmp_path: Path):
    conf = tmp_path / "pict-rs.toml"
    conf.write_text(GOOD)
    env = {"WARDEN_DATA_DIR": str(tmp_path), "WARDEN_PICTRS__API_KEY": "k3y"}
    result = CliRunner().invoke(
        app, ["doctor", "--pictrs-config", str(conf), "--no-lemmy"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "pict-rs validation hook" in result.output and "problem" not in result.output
    missing = CliRunner().invoke(app, ["doctor", "--pictrs-config", str(tmp_path / "no.toml")])
    assert missing.exit_code == 2 and "no.toml" in missing.output
