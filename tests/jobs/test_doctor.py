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
from warden.jobs.doctor import (
    INFO,
    OK,
    PROBLEM,
    check_lemmy_site,
    check_pictrs,
    check_warden,
    pictrs_config,
    probe_nginx,
)

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
        server={"pictrs_secret": "s3cret", "deadline_upload_ms": 40_000},
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
    assert "PICTRS__MEDIA__MAX_FILE_SIZE=9 (MiB" in problems["file size limit"].fix
    assert "PICTRS__MEDIA__IMAGE__MAX_WIDTH=8000" in problems["media.image.max_width"].fix
    assert "PICTRS__MEDIA__VIDEO__ENABLE=false" in problems["video"].fix
    assert "server.deadline_upload_ms below 30000" in problems["upload deadline"].fix
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


# -- item 5: image_mode spelled as each Lemmy version spells it -------------------------


@pytest.mark.parametrize(
    "mode",
    [
        "proxy_all_images",  # 1.0: rename_all = "snake_case" (crates/db_schema_file/src/enums.rs:178)
        "ProxyAllImages",  # 0.19.4+ lemmy.hjson spelling (crates/utils/src/settings/structs.rs:119)
    ],
)
def test_proxy_all_images_is_recognised_in_either_spelling(tmp_path, mode):
    settings = load_settings(None, data_dir=tmp_path)
    site = {"site_view": {"local_site": {"image_mode": mode, "image_upload_timeout_seconds": 30}}}
    problems = _problems(check_lemmy_site(site, "v4", settings))
    assert "ProxyAllImages" in problems["Lemmy image_mode"].detail
    fine = {"site_view": {"local_site": {"image_mode": "store_link_previews"}}}
    assert "Lemmy image_mode" not in _problems(check_lemmy_site(fine, "v4", settings))


def test_lemmy_10_upload_wait_is_compared_with_the_upload_deadline(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)  # deadline_upload_ms 25 000
    site = {"site_view": {"local_site": {"image_mode": "none", "image_upload_timeout_seconds": 20}}}
    problem = _problems(check_lemmy_site(site, "v4", settings))["Lemmy upload wait"]
    assert "below 20000" in problem.fix


# -- item 8: each deadline against media.external_validation_timeout and Lemmy's waits --


def test_deadlines_are_compared_with_external_validation_timeout_not_client_timeout(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)
    config = pictrs_config(
        None,
        {
            "PICTRS__MEDIA__EXTERNAL_VALIDATION_TIMEOUT": "8",
            "PICTRS__CLIENT__TIMEOUT": "60",
        },
    )
    findings = {f.check: f for f in check_pictrs(config, settings)}
    assert findings["upload deadline"].status == PROBLEM
    assert "server.deadline_upload_ms below 8000" in findings["upload deadline"].fix
    assert findings["remote deadline"].status == OK  # 5 s < min(8 s, Lemmy's 10 s)
    assert "hook timeout" not in findings  # client.timeout is beside the point here

    only_client = pictrs_config(None, {"PICTRS__CLIENT__TIMEOUT": "60"})
    findings = {f.check: f for f in check_pictrs(only_client, settings)}
    assert findings["hook timeout"].status == INFO
    assert "media.external_validation_timeout" in findings["hook timeout"].detail


def test_a_remote_deadline_past_lemmys_10_s_wait_is_a_problem(tmp_path):
    settings = load_settings(None, data_dir=tmp_path, server={"deadline_remote_ms": 12_000})
    problems = _problems(check_pictrs(pictrs_config(None, {}), settings))
    assert "server.deadline_remote_ms below 10000" in problems["remote deadline"].fix


# -- item 10: MiB, and pict-rs 0.4's keys -----------------------------------------------


def test_max_file_size_is_mebibytes(tmp_path):
    """40 MiB is 41 943 040 bytes: more than a 40 000 000-byte Warden limit."""
    settings = load_settings(None, data_dir=tmp_path, media={"max_bytes": 40_000_000})
    config = pictrs_config(None, {"PICTRS__MEDIA__MAX_FILE_SIZE": "40"})
    problem = _problems(check_pictrs(config, settings))["file size limit"]
    assert "41,943,040 bytes" in problem.detail
    assert "PICTRS__MEDIA__MAX_FILE_SIZE=38" in problem.fix


PICTRS_04 = """
[server]
api_key = "k3y"
client_pool_size = 100
[media]
external_validation = "http://warden:8790/pictrs/validate"
max_width = 40000
max_file_size = 20
enable_silent_video = true
format = "jxl"
[media.gif]
max_frame_count = 100
"""


def test_pictrs_04_keys_are_read_as_04_keys(tmp_path, monkeypatch):
    monkeypatch.setattr("warden.media.decode.jxl_decoder", lambda: False)
    conf = tmp_path / "pict-rs.toml"
    conf.write_text(PICTRS_04)
    settings = load_settings(None, data_dir=tmp_path, pictrs={"api_key": "k3y"})
    findings = check_pictrs(pictrs_config(conf, {}), settings)
    version = next(f for f in findings if f.check == "pict-rs version")
    assert version.status == INFO and "0.4" in version.detail and "0.4.3" in version.detail
    problems = _problems(findings)
    assert "PICTRS__MEDIA__MAX_WIDTH=30000" in problems["media.max_width"].fix
    assert "PICTRS__MEDIA__ENABLE_SILENT_VIDEO=false" in problems["video"].fix
    assert "PICTRS__MEDIA__FORMAT=webp" in problems["JPEG XL"].fix
    assert "media.image.max_width" not in problems


# -- item 9: JPEG XL ---------------------------------------------------------------------


def test_jpeg_xl_is_fine_when_warden_decodes_it_or_pictrs_converts_it(tmp_path, monkeypatch):
    settings = load_settings(None, data_dir=tmp_path)
    found = {f.check: f for f in check_pictrs(pictrs_config(None, {}), settings)}
    assert found["JPEG XL"].status == OK and "decodes" in found["JPEG XL"].detail
    monkeypatch.setattr("warden.media.decode.jxl_decoder", lambda: False)
    problem = _problems(check_pictrs(pictrs_config(None, {}), settings))["JPEG XL"]
    assert "PICTRS__MEDIA__IMAGE__FORMAT=webp" in problem.fix
    converted = pictrs_config(None, {"PICTRS__MEDIA__IMAGE__FORMAT": "webp"})
    assert "JPEG XL" not in _problems(check_pictrs(converted, settings))


# -- item 7: the proxy's own allow-list --------------------------------------------------


def test_an_empty_proxy_allow_list_is_a_problem(tmp_path):
    assert "pict-rs proxy callers" not in _problems(check_warden(load_settings(None)))
    settings = load_settings(None, data_dir=tmp_path, server={"proxy_allow_from": []})
    assert "proxy_allow_from" in _problems(check_warden(settings))["pict-rs proxy callers"].fix
