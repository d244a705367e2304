"""Thresholds to decisions, with score fixtures (no model, no images)."""

from __future__ import annotations

import pytest

from warden.config import DEFAULT_REJECT_LABELS, load_settings
from warden.domain.policy import LabelPolicy
from warden.domain.verdict import Decision

POLICY = LabelPolicy.from_thresholds(
    {"FEMALE_BREAST_EXPOSED": (0.5, 0.3), "FACE_FEMALE": (None, 0.9)}
)


@pytest.mark.parametrize(
    ("scores", "decision", "codes"),
    [
        ({}, Decision.ACCEPT, []),
        ({"FEMALE_BREAST_EXPOSED": 0.29}, Decision.ACCEPT, []),
        ({"FEMALE_BREAST_EXPOSED": 0.30}, Decision.REVIEW, ["label_review"]),
        ({"FEMALE_BREAST_EXPOSED": 0.4999}, Decision.REVIEW, ["label_review"]),
        ({"FEMALE_BREAST_EXPOSED": 0.50}, Decision.REJECT, ["label_reject"]),
        (
            {"FEMALE_BREAST_EXPOSED": 0.97, "FACE_FEMALE": 0.95},
            Decision.REJECT,
            ["label_reject", "label_review"],
        ),
        ({"FACE_FEMALE": 0.95, "BELLY_EXPOSED": 0.99}, Decision.REVIEW, ["label_review"]),
    ],
)
def test_label_policy_bands(scores, decision, codes):
    got, reasons = POLICY.judge(scores)
    assert got is decision
    assert [r.code for r in reasons] == codes


def test_refusal_names_label_score_and_threshold():
    _, reasons = POLICY.judge({"FEMALE_BREAST_EXPOSED": 0.81})
    assert reasons[0].message == "FEMALE_BREAST_EXPOSED scored 0.81 (refused at 0.50)"
    assert reasons[0].detail["label"] == "FEMALE_BREAST_EXPOSED"


def test_default_policy_rejects_exposed_labels_only(tmp_path):
    policy = load_settings(None, data_dir=tmp_path).policy.label_policy()
    for label in DEFAULT_REJECT_LABELS:
        assert policy.judge({label: 0.9})[0] is Decision.REJECT
        assert policy.judge({label: 0.35})[0] is Decision.REVIEW
    for label in ("FACE_FEMALE", "FACE_MALE", "FEET_EXPOSED", "BELLY_COVERED"):
        assert policy.judge({label: 0.99})[0] is Decision.ACCEPT


def test_thresholds_come_from_toml_and_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "warden.toml"
    cfg.write_text("[policy.labels.FACE_FEMALE]\nreject = 0.6\n[media]\nmax_bytes = 1234\n")
    settings = load_settings(cfg)
    assert settings.policy.labels["FACE_FEMALE"].reject == 0.6
    assert settings.media.max_bytes == 1234
    monkeypatch.setenv("WARDEN_MEDIA__MAX_BYTES", "999")
    assert load_settings(cfg).media.max_bytes == 999


def test_missing_or_bad_config_is_a_clear_error(tmp_path):
    from warden.errors import ConfigError

    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[media]\nmax_bytes = -5\n")
    with pytest.raises(ConfigError, match="max_bytes"):
        load_settings(bad)
