"""`warden doctor` accepts the hook secret where pict-rs 0.5 sends it from (the URL's
user info, which reqwest turns into an Authorization header) and never prints it."""

from __future__ import annotations

from pathlib import Path

from warden.config import load_settings
from warden.jobs.doctor import OK, check_pictrs, pictrs_config
from warden.jobs.findings import Finding

SECRET = "s3cret-hook"


def _hook_finding(url: str, tmp_path: Path) -> Finding:
    settings = load_settings(None, data_dir=tmp_path, server={"pictrs_secret": SECRET})
    env = {"PICTRS__MEDIA__EXTERNAL_VALIDATION": url, "HOME": "/root"}
    findings = check_pictrs(pictrs_config(None, env), settings)
    return next(f for f in findings if f.check == "pict-rs validation hook")


def test_secret_in_user_info_or_query_is_accepted_and_masked(tmp_path: Path) -> None:
    for url in (
        f"http://pictrs:{SECRET}@warden:8790/pictrs/validate",
        f"http://warden:8790/pictrs/validate?secret={SECRET}",
    ):
        finding = _hook_finding(url, tmp_path)
        assert finding.status == OK, finding
        shown = f"{finding.detail} {finding.fix}"
        assert SECRET not in shown
        assert "[redacted]" in shown


def test_a_hook_without_the_secret_is_told_the_header_form(tmp_path: Path) -> None:
    finding = _hook_finding("http://warden:8790/pictrs/validate", tmp_path)
    assert finding.status != OK
    assert "http://pictrs:<server.pictrs_secret>@" in finding.fix
