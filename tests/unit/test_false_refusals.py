"""Ordinary pictures that the model misreads, and the colour view that keeps them
from being rejected (issue 17: 0 rejected, at most 0.5 % refused on ordinary photos).

The pictures are made here: a colour wheel drawn from its formula (NudeNet reads
it as BUTTOCKS_EXPOSED at 0.7-0.8, as it does scikit-image's), and animals and
objects cut out onto white from scikit-image's photos, the kind of picture a
hidden corpus of ordinary uploads refused most often. The decision path is also
driven with a stand-in model whose scores and boxes are given, so what is
asserted is the decision Warden makes from them.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import encode
from warden.domain.verdict import Decision
from warden.media import second_look
from warden.media.classify import NUDENET_LABELS, Classification, Detection
from warden.media.pipeline import ScanContext
from warden.services import build_scanner

# -- pictures -----------------------------------------------------------------


def colour_wheel(side: int) -> Image.Image:
    """Hue by angle, saturation by radius, fading towards the rim, black outside."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    centre = (side - 1) / 2
    dx, dy = (x - centre) / centre, (y - centre) / centre
    radius = np.hypot(dx, dy)
    hue = (np.degrees(np.arctan2(dy, dx)) % 360) / 2  # OpenCV's hue runs 0-180
    saturation = np.clip(radius, 0, 1) * 255
    value = np.clip(1.0 - 0.75 * radius**2, 0, 1) * 255
    hsv = np.stack([hue, saturation, value], -1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb[radius > 1] = 0
    return Image.fromarray(rgb)


def _on_white(rgb: np.ndarray, foreground: np.ndarray) -> Image.Image:
    out = np.full_like(rgb, 255)
    out[foreground] = rgb[foreground]
    return Image.fromarray(out)


def cut_out(rgb: np.ndarray, rect: tuple[int, int, int, int]) -> Image.Image:
    """The subject inside `rect` separated with GrabCut and put on white."""
    mask = np.zeros(rgb.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        mask,
        rect,
        background,
        foreground,
        5,
        cv2.GC_INIT_WITH_RECT,
    )
    return _on_white(rgb, (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def cut_outs() -> Iterator[tuple[str, Image.Image]]:
    """Animals and objects on white, at three sizes, and mirrored."""
    from skimage import data

    fur = np.asarray(Image.fromarray(data.chelsea()).resize((400, 328)))
    horse = _on_white(fur, ~data.horse())  # the horse's silhouette, in a tabby's fur
    subjects = {
        "cat": cut_out(data.chelsea(), (60, 20, 330, 280)),
        "coffee": cut_out(data.coffee(), (100, 30, 450, 330)),
        "horse": horse,
        "grey horse": ImageOps.grayscale(horse).convert("RGB"),
    }
    for name, image in subjects.items():
        for longest in (320, 640, 1024):
            scale = longest / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            resized = image.resize(size, Image.Resampling.LANCZOS)
            yield f"{name}@{longest}", resized
            yield f"{name}@{longest} mirrored", ImageOps.mirror(resized)


@pytest.fixture
def scanner(settings, classifier):
    settings.media.isolation = "thread"
    return build_scanner(settings, classifier=classifier)


# -- the real model on ordinary pictures --------------------------------------


@pytest.mark.parametrize("side", [256, 370, 640, 1024])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_colour_wheel_is_never_rejected(scanner, classifier, side, fmt):
    wheel = colour_wheel(side)
    first = classifier.classify([wheel])[0].scores["BUTTOCKS_EXPOSED"]
    assert first >= 0.5  # the model's misreading, which the test is about
    verdict = scanner.scan(encode(wheel, fmt), ScanContext())
    assert verdict.decision is Decision.REVIEW
    assert verdict.reasons[0].detail["label"] == "BUTTOCKS_EXPOSED"


@pytest.mark.parametrize("side", [640, 1024])
def test_the_colour_view_is_what_saves_scikit_images_wheel(scanner, classifier, side):
    """scikit-image's wheel: at these sizes the second scale supports the misreading
    (0.50-0.58), so only the colour view tells it from a real hit."""
    from skimage import data

    wheel = Image.fromarray(data.colorwheel()).convert("RGB").resize((side, side))
    assert (
        classifier.classify_at([wheel], second_look.SECOND_SCALE)[0].scores["BUTTOCKS_EXPOSED"]
        >= 0.5
    )
    verdict = scanner.scan(encode(wheel, "PNG"), ScanContext())
    reason = verdict.reasons[0]
    assert verdict.decision is Decision.REVIEW
    assert reason.detail["skin_share"] < second_look.MIN_SKIN_SHARE
    assert "skin-coloured" in reason.message


def test_animals_and_objects_cut_out_on_white_are_not_refused(scanner):
    files = [(name, encode(image, "JPEG", quality=90)) for name, image in cut_outs()]
    verdicts = scanner.scan_many([(data, ScanContext()) for _, data in files])
    rejected = [
        n for (n, _), v in zip(files, verdicts, strict=True) if v.decision is Decision.REJECT
    ]
    refused = [
        n for (n, _), v in zip(files, verdicts, strict=True) if v.decision is not Decision.ACCEPT
    ]
    assert rejected == []
    assert refused == []


# -- the colour view ----------------------------------------------------------


def _patch(rgb: tuple[int, int, int], size: tuple[int, int] = (200, 160)) -> Image.Image:
    return Image.new("RGB", size, rgb)


@pytest.mark.parametrize(
    ("rgb", "share"),
    [
        ((224, 172, 138), 1.0),  # light skin
        ((141, 85, 36), 1.0),  # dark skin
        ((40, 90, 220), 0.0),  # saturated blue
        ((30, 200, 60), 0.0),  # saturated green
    ],
)
def test_skin_share_of_colour_boxes(rgb, share):
    assert second_look.skin_share(_patch(rgb), (10, 10, 100, 100)) == share


@pytest.mark.parametrize("rgb", [(128, 128, 128), (20, 20, 20), (250, 250, 250)])
def test_a_grey_box_says_nothing_about_skin(rgb):
    assert second_look.skin_share(_patch(rgb), (10, 10, 100, 100)) is None


def test_real_skin_passes_the_colour_view_with_room_to_spare(classifier, astronaut):
    """Sensitivity, by proxy (no sensitive imagery here): the skin of the one real
    person in the photos, in the box the model itself draws around her face, under
    warm and cool white balance, more or less saturated, stays well above the veto
    (or, cooled to grey, leaves colour nothing to say)."""
    from PIL import ImageEnhance

    face = max(
        (d for d in classifier.classify([astronaut])[0].detections if d.label == "FACE_FEMALE"),
        key=lambda d: d.score,
    )
    rgb = np.asarray(astronaut.convert("RGB")).astype(np.float32)
    for gains in ((1.0, 1.0, 1.0), (1.2, 1.0, 0.8), (0.9, 1.0, 1.15), (1.0, 1.0, 1.3)):
        balanced = Image.fromarray(np.clip(rgb * np.float32(gains), 0, 255).astype(np.uint8))
        for saturation in (0.5, 1.0, 1.5):
            picture = ImageEnhance.Color(balanced).enhance(saturation)
            share = second_look.skin_share(picture, face.box)
            assert share is None or share >= 2 * second_look.MIN_SKIN_SHARE, (gains, saturation)


def test_a_box_outside_the_picture_says_nothing():
    assert second_look.skin_share(_patch((40, 90, 220)), (500, 500, 50, 50)) is None


class OneBox:
    """A stand-in model: every view scores `label` at `score`, on a box in the middle.

    Every view agrees (the crop, the second scale), so only the colour view can
    change the decision.
    """

    name = "one-box"
    labels = NUDENET_LABELS

    def __init__(self, label: str, score: float) -> None:
        self.label, self.score = label, score

    def _result(self, image: Image.Image) -> Classification:
        box = (image.width * 0.3, image.height * 0.3, image.width * 0.2, image.height * 0.2)
        scores = dict.fromkeys(NUDENET_LABELS, 0.0) | {self.label: self.score}
        return Classification(scores, (Detection(self.label, self.score, box),))

    def classify(self, images: list[Image.Image]) -> list[Classification]:
        return [self._result(im) for im in images]

    def classify_at(self, images: list[Image.Image], size: int) -> list[Classification]:
        return self.classify(images)


@pytest.mark.parametrize(
    ("rgb", "label", "decision"),
    [
        ((40, 90, 220), "BUTTOCKS_EXPOSED", Decision.REVIEW),  # blue: no skin in the box
        ((224, 172, 138), "BUTTOCKS_EXPOSED", Decision.REJECT),  # skin-toned: stands
        ((128, 128, 128), "BUTTOCKS_EXPOSED", Decision.REJECT),  # grey: colour cannot tell
        ((40, 90, 220), "FEMALE_GENITALIA_COVERED", Decision.REJECT),  # not a skin label
    ],
)
def test_the_colour_view_only_softens_exposed_skin_in_colour_boxes(settings, rgb, label, decision):
    from warden.config import LabelThreshold

    settings.media.isolation = "thread"
    settings.policy.labels[label] = LabelThreshold(reject=0.5, review=0.3)
    scanner = build_scanner(settings, classifier=OneBox(label, 0.9))
    verdict = scanner.scan(encode(_patch(rgb, (640, 480)), "PNG"), ScanContext())
    assert verdict.decision is decision
    assert verdict.labels[label] == pytest.approx(0.9)  # the first view's score is kept


def test_two_labels_rejecting_together_are_not_second_guessed_by_colour(settings):
    class TwoLabels(OneBox):
        def _result(self, image: Image.Image) -> Classification:
            result = super()._result(image)
            scores = dict(result.scores) | {"FEMALE_BREAST_EXPOSED": 0.8}
            return Classification(scores, result.detections)

    settings.media.isolation = "thread"
    scanner = build_scanner(settings, classifier=TwoLabels("BUTTOCKS_EXPOSED", 0.9))
    verdict = scanner.scan(encode(_patch((40, 90, 220), (640, 480)), "PNG"), ScanContext())
    assert verdict.decision is Decision.REJECT
