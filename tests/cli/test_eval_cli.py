"""`warden eval` through Typer's runner: generated images, the real model, face labels
configured as reject labels so the refusal path runs on ordinary pictures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import encode, gradient
from warden.cli import app
from warden.jobs.evaluate import THRESHOLDS, Record, rate, read_labels, threshold_table

runner = CliRunner()

FACES = """
data_dir = "{data}"
[policy.labels.FACE_FEMALE]
reject = 0.5
review = 0.3
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "warden.toml"
    path.write_text(FACES.format(data=tmp_path / "data"))
    return path


@pytest.fixture
def folder(tmp_path, astronaut):
    """Five pictures without faces and the astronaut, whose face scores ~0.73."""
    root = tmp_path / "pictures"
    root.mkdir()
    for seed in range(5):
        (root / f"plain{seed}.png").write_bytes(
            encode(gradient(320, 240, seed=seed + 10).convert("L").convert("RGB"), "PNG")
        )
    (root / "astronaut.jpg").write_bytes(encode(astronaut))
    return root


def test_eval_prints_the_refusal_rate_and_the_label_behind_each_refusal(config, folder):
    result = runner.invoke(app, ["--config", str(config), "eval", str(folder)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "6 files" in out
    assert "16.67%" in out  # 1 of 6 refused
    assert "astronaut.jpg" in out and "FACE_FEMALE 0.7" in out
    assert "plain0.png" not in out  # accepted files are not listed
    assert "thresholds" not in out  # nothing expected: no rates to give


def test_eval_with_expect_gives_false_refusal_rates_per_threshold_and_a_plot(
    config, folder, tmp_path
):
    svg = tmp_path / "rates.svg"
    result = runner.invoke(
        app,
        ["--config", str(config), "eval", str(folder), "--expect", "accept", "--plot", str(svg)],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "false refusals (expected accept)" in out and "16.67%" in out
    assert "false-refusal rate by threshold" in out
    # one of six files scores FACE_FEMALE >= 0.5 (the astronaut): 16.7 % at the reject mark
    row = next(line for line in out.splitlines() if "0.50 │" in line)
    assert "16.7% R" in row
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    lines = [el for el in root.iter() if el.tag.endswith("polyline")]
    assert lines, "the plot has a line per label"


def test_eval_labels_csv_and_sub_folders_give_detection_rates(config, tmp_path, astronaut):
    root = tmp_path / "set"
    (root / "reject").mkdir(parents=True)
    (root / "reject" / "face.jpg").write_bytes(encode(astronaut))
    (root / "calm.png").write_bytes(encode(gradient(320, 240, seed=3), "PNG"))
    (root / "other.png").write_bytes(encode(gradient(320, 240, seed=4), "PNG"))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,expect\ncalm.png,accept\nother.png,accept\n")
    png = tmp_path / "rates.png"
    result = runner.invoke(
        app,
        ["--config", str(config), "eval", str(root), "--labels", str(labels), "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert "detection rate" in result.stdout
    assert "missed (expected refused)" in result.stdout
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_eval_refuses_bad_input_clearly(config, folder, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("plain0.png,maybe\n")
    result = runner.invoke(
        app, ["--config", str(config), "eval", str(folder), "--labels", str(bad)]
    )
    assert result.exit_code == 2
    assert "expect must be accept, review or reject" in result.stderr
    result = runner.invoke(app, ["--config", str(config), "eval", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a folder" in result.stderr
    result = runner.invoke(
        app, ["--config", str(config), "eval", str(folder), "--plot", str(tmp_path / "x.gif")]
    )
    assert result.exit_code == 2 and ".svg or .png" in result.stderr


def test_rates_and_table_from_score_fixtures(tmp_path):
    def rec(expected, score):
        return Record(tmp_path / "x", expected, "accept", (), {"BUTTOCKS_EXPOSED": score}, ())

    records = [rec("accept", s) for s in (0.0, 0.3, 0.55, 0.9)] + [rec("reject", 0.8)]
    assert rate(records[:4], "BUTTOCKS_EXPOSED", 0.5) == 0.5
    table = threshold_table(records, ["BUTTOCKS_EXPOSED"])
    at = THRESHOLDS.index(0.6)
    assert table["ordinary"]["BUTTOCKS_EXPOSED"][at] == 0.25
    assert table["to_refuse"]["BUTTOCKS_EXPOSED"][at] == 1.0
    labels = tmp_path / "l.csv"
    labels.write_text("# comment\na.png,reject\n")
    assert read_labels(labels, tmp_path) == {(tmp_path / "a.png").resolve(): "reject"}


def test_eval_counts_and_lists_what_the_second_look_accepted(tmp_path):
    """Default settings, real model: Ubuntu MATE's dandelion wallpaper (TwoWings,
    640 px PNG) reads FEMALE_GENITALIA_EXPOSED at the review band and is accepted by
    the second look (issue 17); `warden eval` says so apart from the plain accepts,
    so an admin sees what `policy.second_look_reviews` changes."""
    from tests import photos

    root = tmp_path / "pictures"
    root.mkdir()
    picture = photos.picture("mate/nature/TwoWings.jpg", 1024).copy()
    picture.thumbnail((640, 640))
    (root / "dandelion.png").write_bytes(encode(picture, "PNG"))
    (root / "plain.png").write_bytes(encode(gradient(320, 240, seed=3), "PNG"))
    config = tmp_path / "warden.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = runner.invoke(app, ["--config", str(config), "eval", str(root), "--expect", "accept"])
    assert result.exit_code == 0, result.output
    assert "accepted after a second look" in result.output
    row = next(line for line in result.output.splitlines() if "after a second look" in line)
    assert [cell.strip() for cell in row.split("│")[2:4]] == ["1", "50.00%"], row
    assert "dandelion.png" in result.output and "FEMALE_GENITALIA_EXPOSED" in result.output
    assert "plain.png" not in result.output
