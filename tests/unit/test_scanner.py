"""The whole scan path with the real bundled model on ordinary images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from tests.conftest import encode, gradient
from warden.config import LabelThreshold, load_settings
from warden.domain.policy import FailMode
from warden.domain.verdict import Decision
from warden.media import hashing
from warden.media.classify import NUDENET_LABELS, NudeNetClassifier
from warden.media.pipeline import ScanContext
from warden.services import build_scanner


def test_astronaut_gets_a_face_female_score(settings, classifier, astronaut):
    verdict = build_scanner(settings, classifier=classifier).scan(encode(astronaut))
    assert verdict.labels["FACE_FEMALE"] > 0.5
    assert verdict.decision is Decision.ACCEPT  # faces never decide by default
    assert verdict.reasons == ()
    assert set(verdict.labels) == set(NUDENET_LABELS)
    assert verdict.model and verdict.model.startswith("nudenet-320n@")


def test_a_config_that_refuses_faces_rejects_the_astronaut(tmp_path, classifier, astronaut):
    settings = load_settings(None, data_dir=tmp_path)
    settings.policy.labels["FACE_FEMALE"] = LabelThreshold(reject=0.5)
    verdict = build_scanner(settings, classifier=classifier).scan(encode(astronaut))
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["label_reject"]
    assert verdict.reasons[0].detail["label"] == "FACE_FEMALE"
    assert "FACE_FEMALE scored" in verdict.reasons[0].message


def test_a_review_band_sends_to_review(tmp_path, classifier, astronaut):
    settings = load_settings(None, data_dir=tmp_path)
    settings.policy.labels["FACE_FEMALE"] = LabelThreshold(reject=0.99, review=0.3)
    verdict = build_scanner(settings, classifier=classifier).scan(encode(astronaut))
    assert verdict.decision is Decision.REVIEW


def test_ordinary_pictures_are_accepted_with_defaults(settings, classifier, ordinary_images):
    scanner = build_scanner(settings, classifier=classifier)
    files = [(encode(img, "PNG"), ScanContext()) for img in ordinary_images.values()]
    verdicts = scanner.scan_many(files)
    assert [v.decision for v in verdicts] == [Decision.ACCEPT] * len(files)


def test_batch_and_single_scans_agree(settings, classifier, ordinary_images):
    scanner = build_scanner(settings, classifier=classifier)
    files = [(encode(img), ScanContext()) for img in ordinary_images.values()]
    batch = scanner.scan_many(files)
    for (data, ctx), together in zip(files, batch, strict=True):
        alone = scanner.scan(data, ctx)
        for label in NUDENET_LABELS:
            assert alone.labels[label] == pytest.approx(together.labels[label], abs=1e-4)


def test_verdict_carries_hashes_media_and_timings(settings, classifier):
    data = encode(gradient(800, 600), "PNG")
    verdict = build_scanner(settings, classifier=classifier).scan(data)
    assert len(verdict.sha256) == 64 and verdict.size == len(data)
    assert verdict.pdq is not None and len(verdict.pdq) == 64
    assert verdict.media is not None and verdict.media.format == "png"
    assert {"decode", "hash", "classify", "total"} <= set(verdict.timings)


def test_frame_hashes_from_the_decoder_processes_are_pdqhash_bit_for_bit(settings, ordinary_images):
    """The service hashes each frame straight from the decoder's shared memory with the
    compiled hasher: every plain hash and its seven variants are pdqhash's on the very
    pixels the scanner decoded (RGB, grey and palette files, an animation)."""
    assert settings.media.isolation == "process"
    scanner = build_scanner(settings, classifier=None)
    photos = list(ordinary_images.values())
    animation = __import__("io").BytesIO()
    frames = [photos[i % len(photos)].convert("RGB").quantize(256) for i in range(4)]
    frames[0].save(animation, "GIF", save_all=True, append_images=frames[1:], duration=40)
    files = [encode(img) for img in photos]
    files += [encode(photos[0].convert("L"), "PNG"), encode(photos[1].convert("P"), "PNG")]
    files.append(animation.getvalue())
    try:
        for data in files:
            item = scanner.prepare(data, ScanContext())
            assert item.decoded is not None and len(item.frames) == len(item.images) > 0
            for frame, image in zip(item.frames, item.images, strict=True):
                bits, quality = pdqhash.compute_dihedral(np.asarray(image.convert("RGB")))
                expected = [hashing.bits_to_hex(b) for b in bits]
                assert [frame.pdq, *frame.variants] == expected
                assert frame.quality == quality
    finally:
        scanner.close()


def test_animated_gif_scores_every_sampled_frame(settings, classifier, astronaut):
    """A face hidden in a late frame of an animation is still seen."""
    frames = [gradient(512, 512, seed=i).quantize(256) for i in range(30)]
    frames[29] = astronaut.quantize(256)
    buf = __import__("io").BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=40)
    verdict = build_scanner(settings, classifier=classifier).scan(buf.getvalue())
    assert verdict.media is not None and verdict.media.frame_count == 30
    assert [f.frame for f in verdict.frames][-1] == 29
    assert verdict.labels["FACE_FEMALE"] > 0.4


def test_undecodable_media_is_refused_with_its_reason(settings, classifier):
    verdict = build_scanner(settings, classifier=classifier).scan(b"<svg><script/></svg>")
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["unsupported_format"]
    assert verdict.sha256 and verdict.frames == ()


def test_missing_model_fails_closed(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)
    settings.model.path = tmp_path / "missing.onnx"
    scanner = build_scanner(settings)
    verdict = scanner.scan(encode(gradient()), ScanContext(source="upload"))
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["model_unavailable"]
    assert "missing.onnx" in verdict.reasons[0].message


def test_fail_open_is_per_source_and_says_so(tmp_path):
    settings = load_settings(None, data_dir=tmp_path)
    settings.model.path = tmp_path / "missing.onnx"
    settings.policy.fail_mode_remote = FailMode.OPEN
    scanner = build_scanner(settings)
    remote = scanner.scan(encode(gradient()), ScanContext(source="remote"))
    upload = scanner.scan(encode(gradient()), ScanContext(source="upload"))
    assert remote.decision is Decision.ACCEPT
    assert remote.reasons[0].detail["fail_mode"] == "open"
    assert upload.decision is Decision.REJECT


def test_a_corrupt_model_file_is_unavailable_not_a_crash(tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    from warden.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="cannot load model"):
        NudeNetClassifier(Path(bogus)).warm_up()


def test_classifier_crash_fails_closed(settings, astronaut):
    class Broken:
        name = "broken"
        labels = NUDENET_LABELS

        def classify(self, images: list[Image.Image]):
            raise RuntimeError("CUDA error: device lost")

    verdict = build_scanner(settings, classifier=Broken()).scan(encode(astronaut))
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["scan_error"]
    assert "device lost" in verdict.reasons[0].message


# -- the second look ------------------------------------------------------------

from warden.media.classify import Classification, Detection  # noqa: E402


class TwoViews:
    """A stand-in model whose first view and second views score as told.

    Used only to drive the policy's decision path; what is asserted is the
    decision the scanner makes from those scores.
    """

    name = "two-views"
    labels = NUDENET_LABELS

    def __init__(self, first: dict[str, float], second: dict[str, float], fail: bool = False):
        self.first, self.second, self.fail = first, second, fail
        self.calls = 0

    def _result(self, scores: dict[str, float], image: Image.Image) -> Classification:
        box = (image.width * 0.4, image.height * 0.4, image.width * 0.1, image.height * 0.1)
        full = dict.fromkeys(NUDENET_LABELS, 0.0) | scores
        return Classification(full, tuple(Detection(k, v, box) for k, v in scores.items()))

    def classify(self, images: list[Image.Image]) -> list[Classification]:
        self.calls += 1
        if self.calls > 1 and self.fail:
            raise RuntimeError("second look crashed")
        scores = self.first if self.calls == 1 else self.second
        return [self._result(scores, im) for im in images]

    def classify_at(self, images: list[Image.Image], size: int) -> list[Classification]:
        if self.fail:
            raise RuntimeError("second look crashed")
        return [self._result(self.second, im) for im in images]


#: A grey picture: the colour view (tests/unit/test_false_refusals.py) cannot tell
#: skin there, so only the model's views decide.
GREY = encode(gradient().convert("L"))


@pytest.mark.parametrize(
    ("second", "decision", "code"),
    [
        ({"BUTTOCKS_EXPOSED": 0.1}, Decision.REVIEW, "label_review"),
        ({}, Decision.REVIEW, "label_review"),
        ({"BUTTOCKS_EXPOSED": 0.7}, Decision.REJECT, "label_reject"),
    ],
)
def test_a_single_label_reject_stands_only_if_a_second_view_supports_it(
    settings, second, decision, code
):
    model = TwoViews({"BUTTOCKS_EXPOSED": 0.8}, second)
    verdict = build_scanner(settings, classifier=model).scan(GREY)
    assert verdict.decision is decision
    assert verdict.codes == [code]
    assert verdict.labels["BUTTOCKS_EXPOSED"] == pytest.approx(0.8)  # the first view's score


def test_two_labels_at_reject_corroborate_without_a_second_look(settings):
    model = TwoViews({"BUTTOCKS_EXPOSED": 0.8, "MALE_GENITALIA_EXPOSED": 0.6}, {})
    verdict = build_scanner(settings, classifier=model).scan(GREY)
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["label_reject", "label_reject"]


def test_a_failing_second_look_leaves_the_first_views_reject(settings):
    model = TwoViews({"BUTTOCKS_EXPOSED": 0.8}, {}, fail=True)
    verdict = build_scanner(settings, classifier=model).scan(GREY)
    assert verdict.decision is Decision.REJECT
    assert verdict.codes == ["label_reject"]


def test_real_model_a_face_on_noise_seen_from_one_view_only_is_reviewed(tmp_path, classifier):
    """FACE_FEMALE as a reject label exercises the real path with ordinary images."""
    settings = load_settings(None, data_dir=tmp_path)
    data = encode(gradient(640, 480, seed=2), "PNG")
    first = build_scanner(settings, classifier=classifier).scan(data).labels["FACE_FEMALE"]
    assert first > 0.4  # the model reads a face into the noise at 320 px
    threshold = round(first - 0.02, 2)
    settings.policy.labels["FACE_FEMALE"] = LabelThreshold(reject=threshold, review=0.3)
    settings.policy.second_look = False
    strict = build_scanner(settings, classifier=classifier).scan(data)
    assert strict.decision is Decision.REJECT
    settings.policy.second_look = True
    verdict = build_scanner(settings, classifier=classifier).scan(data)
    assert verdict.decision is Decision.REVIEW
    assert verdict.reasons[0].detail["second_look"] < threshold


def test_real_model_second_look_keeps_real_faces_and_never_accepts(
    tmp_path, classifier, ordinary_images
):
    """Sensitivity: a face the model sees is still refused; nothing refused is let through."""
    settings = load_settings(None, data_dir=tmp_path)
    for label in ("FACE_FEMALE", "FACE_MALE"):
        settings.policy.labels[label] = LabelThreshold(reject=0.5, review=0.3)
    images = [*ordinary_images.values(), *(gradient(640, 480, seed=s) for s in range(3))]
    files = [(encode(im, "PNG"), ScanContext()) for im in images]
    looked = build_scanner(settings, classifier=classifier).scan_many(files)
    settings.policy.second_look = False
    first = build_scanner(settings, classifier=classifier).scan_many(files)
    assert looked[0].decision is Decision.REJECT  # the astronaut's face, confirmed
    for a, b in zip(first, looked, strict=True):
        assert a.decision.severity - b.decision.severity in (0, 1)
        if a.decision is not Decision.ACCEPT:
            assert b.decision is not Decision.ACCEPT
