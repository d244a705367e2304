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


# -- the second look: score fixtures for the first view and for the second -------

EXPOSED = LabelPolicy.from_thresholds(
    {
        "BUTTOCKS_EXPOSED": (0.5, 0.3),
        "MALE_GENITALIA_EXPOSED": (0.5, 0.3),
        "FACE_FEMALE": (None, 0.9),
    }
)


@pytest.mark.parametrize(
    ("scores", "wanted"),
    [
        ({}, ()),
        ({"BUTTOCKS_EXPOSED": 0.45}, ()),  # a review needs no confirmation
        ({"BUTTOCKS_EXPOSED": 0.80}, ("BUTTOCKS_EXPOSED",)),
        ({"BUTTOCKS_EXPOSED": 0.80, "FACE_FEMALE": 0.95}, ("BUTTOCKS_EXPOSED",)),
        ({"BUTTOCKS_EXPOSED": 0.80, "MALE_GENITALIA_EXPOSED": 0.54}, ()),  # corroborated
    ],
)
def test_only_a_reject_resting_on_one_label_gets_a_second_look(scores, wanted):
    assert EXPOSED.needs_second_look(scores) == wanted


@pytest.mark.parametrize(
    ("again", "decision", "code"),
    [
        (0.0, Decision.REVIEW, "label_review"),
        (0.49, Decision.REVIEW, "label_review"),
        (0.50, Decision.REJECT, "label_reject"),
        (0.91, Decision.REJECT, "label_reject"),
    ],
)
def test_a_hit_only_one_view_supports_is_reviewed_never_accepted(again, decision, code):
    got, reasons = EXPOSED.judge({"BUTTOCKS_EXPOSED": 0.80}, {"BUTTOCKS_EXPOSED": again})
    assert got is decision
    assert [r.code for r in reasons] == [code]
    assert reasons[0].detail["score"] == 0.8 and reasons[0].detail["threshold"] == 0.5
    if decision is Decision.REVIEW:
        assert reasons[0].detail["second_look"] == again
        assert "second look" in reasons[0].message


def test_a_second_look_never_changes_a_review_or_another_label():
    got, reasons = EXPOSED.judge(
        {"BUTTOCKS_EXPOSED": 0.40, "FACE_FEMALE": 0.95}, {"BUTTOCKS_EXPOSED": 0.0}
    )
    assert got is Decision.REVIEW
    assert [r.detail.get("second_look") for r in reasons] == [None, None]


def test_second_look_can_be_switched_off(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)
    assert settings.policy.label_policy().needs_second_look({"ANUS_EXPOSED": 0.9})
    settings.policy.second_look = False
    strict = settings.policy.label_policy()
    assert strict.needs_second_look({"ANUS_EXPOSED": 0.9}) == ()
