"""The production-safety check (issue 14): beyond loopback Warden refuses to listen
with the hook or the proxy open, a trusted proxy that is Lemmy, or evidence sealed
with a key it generated itself; one ConfigError names every setting to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from warden.config import load_settings
from warden.errors import ConfigError
from warden.services.exposure import check_listening, listening_problems
from warden.store.quarantine import generate_key

SECRET = "hook-secret-8c1f2e"


def test_a_generated_evidence_key_is_refused_beyond_loopback(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, server={"pictrs_secret": SECRET})
    with pytest.raises(ConfigError) as refused:
        check_listening(settings, "0.0.0.0")
    assert "evidence.key" in refused.value.message
    assert "warden evidence keygen" in refused.value.message
    assert not (tmp_path / "evidence.key").exists()  # refused before any key was made


def test_a_configured_key_or_no_preservation_may_listen_beyond_loopback(tmp_path: Path) -> None:
    keyed = load_settings(
        None, data_dir=tmp_path, server={"pictrs_secret": SECRET}, evidence={"key": generate_key()}
    )
    off = load_settings(
        None, data_dir=tmp_path, server={"pictrs_secret": SECRET}, evidence={"enabled": False}
    )
    check_listening(keyed, "192.0.2.10")
    check_listening(off, "::")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_keeps_the_embedded_defaults(host: str, tmp_path: Path) -> None:
    check_listening(load_settings(None, data_dir=tmp_path), host)


def test_one_refusal_names_every_setting_to_set(tmp_path: Path) -> None:
    """No secret, no allow-list, a generated key: all three named at once, so the
    admin fixes the file once rather than meeting one refusal after another."""
    settings = load_settings(None, data_dir=tmp_path, server={"proxy_allow_from": ["0.0.0.0/0"]})
    problems = listening_problems(settings, "0.0.0.0")
    assert len(problems) == 3
    with pytest.raises(ConfigError) as refused:
        check_listening(settings, "0.0.0.0")
    for setting in (
        "server.pictrs_secret",
        "server.pictrs_allow_from",
        "server.proxy_allow_from",
        "evidence.key",
    ):
        assert setting in refused.value.message


def test_trusting_lemmy_as_a_proxy_is_refused_even_on_loopback(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path, server={"trusted_proxies": ["127.0.0.0/8"]})
    with pytest.raises(ConfigError) as refused:
        check_listening(settings, "127.0.0.1")
    assert "server.trusted_proxies" in refused.value.message
