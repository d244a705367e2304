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

import io
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from tests.conftest import encode
from warden.domain.policy import LabelPolicy
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


# -- the second look at a lone review ---------------------------------------------


def _busy(size: tuple[int, int] = (640, 480), spread: int = 255) -> Image.Image:
    """Noise with the given brightness spread: a picture with detail to show."""
    rng = np.random.default_rng(0)
    low = 128 - spread // 2
    grey = rng.integers(low, low + spread + 1, (size[1], size[0]), dtype=np.int16)
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")


class Views:
    """A stand-in model whose three views are given: the first view (the scanned
    frame) scores `label` at `first` on a box, the crop around that box scores
    `close`, the second scale scores `wide` (label -> score, others 0)."""

    name = "views"
    labels = NUDENET_LABELS

    def __init__(
        self,
        label: str,
        first: float,
        close: dict[str, float] | None = None,
        wide: dict[str, float] | None = None,
        box: float = 0.3,
    ) -> None:
        self.label, self.first, self.box = label, first, box
        self.close, self.wide = close or {}, wide or {}
        self.frame_size: tuple[int, int] | None = None
        self.looked: list[str] = []

    @staticmethod
    def _result(scores: dict[str, float], box: tuple[float, ...]) -> Classification:
        detections = tuple(Detection(k, v, box) for k, v in scores.items() if v > 0)
        return Classification(dict.fromkeys(NUDENET_LABELS, 0.0) | scores, detections)  # type: ignore[arg-type]

    def classify(self, images: list[Image.Image]) -> list[Classification]:
        out = []
        for image in images:
            if self.frame_size is None or image.size == self.frame_size:
                self.frame_size = image.size
                w, h = image.size
                box = (w * 0.4, h * 0.4, w * self.box, h * self.box)
                out.append(self._result({self.label: self.first}, box))
            else:
                self.looked.append("crop")
                out.append(self._result(self.close, (0.0, 0.0, 10.0, 10.0)))
        return out

    def classify_at(self, images: list[Image.Image], size: int) -> list[Classification]:
        self.looked.append(f"scale {size}")
        return [self._result(self.wide, (0.0, 0.0, 10.0, 10.0)) for _ in images]


def _scan(settings, model, picture: Image.Image | None = None):
    settings.media.isolation = "thread"
    scanner = build_scanner(settings, classifier=model)
    return scanner.scan(encode(picture or _busy(), "PNG"), ScanContext())


def test_a_lone_review_no_second_view_supports_is_accepted_and_says_why(settings):
    model = Views(
        "FEMALE_GENITALIA_EXPOSED", 0.41, close={}, wide={"FEMALE_GENITALIA_EXPOSED": 0.22}
    )
    verdict = _scan(settings, model)
    assert verdict.decision is Decision.ACCEPT
    [reason] = verdict.reasons
    assert reason.code == "label_cleared"
    assert reason.detail == {
        "label": "FEMALE_GENITALIA_EXPOSED",
        "score": 0.41,
        "threshold": 0.3,
        "second_look": 0.22,
    }
    assert "accepted" in reason.message and "second look" in reason.message
    assert sorted(model.looked) == ["crop", f"scale {second_look.SECOND_SCALE}"]
    assert verdict.labels["FEMALE_GENITALIA_EXPOSED"] == pytest.approx(0.41)


@pytest.mark.parametrize(
    ("close", "wide"),
    [
        ({"FEMALE_GENITALIA_EXPOSED": 0.3}, {}),  # the crop supports it
        ({}, {"FEMALE_GENITALIA_EXPOSED": 0.35}),  # the second scale does
        ({"BUTTOCKS_EXPOSED": 0.6}, {}),  # up close it is another label the policy acts on
        ({}, {"ANUS_EXPOSED": 0.31}),  # so it is at the second scale
    ],
)
def test_a_lone_review_a_second_view_supports_stands(settings, close, wide):
    verdict = _scan(settings, Views("FEMALE_GENITALIA_EXPOSED", 0.41, close, wide))
    assert verdict.decision is Decision.REVIEW
    assert [r.code for r in verdict.reasons] == ["label_review"]


def test_a_review_two_labels_share_is_not_second_guessed(settings):
    class Two(Views):
        def _result(self, scores, box):
            if scores.get(self.label) == self.first:
                scores = scores | {"BUTTOCKS_EXPOSED": 0.32}
            return super()._result(scores, box)

    model = Two("FEMALE_GENITALIA_EXPOSED", 0.41)
    verdict = _scan(settings, model)
    assert verdict.decision is Decision.REVIEW
    assert model.looked == []


@pytest.mark.parametrize(
    ("picture", "box", "why"),
    [
        (_busy((180, 135)), 0.3, "a thumbnail: the second scale would only blow it up"),
        (_busy((640, 480)), 0.1, "a small box: the crop would be magnified past 2x"),
        (_busy((640, 480), spread=40), 0.3, "a washed-out box: no view has detail to show"),
    ],
)
def test_a_lone_review_stands_where_the_second_views_would_show_nothing_new(
    settings, picture, box, why
):
    model = Views("FEMALE_GENITALIA_EXPOSED", 0.41, box=box)
    verdict = _scan(settings, model, picture)
    assert verdict.decision is Decision.REVIEW, why


def test_clearing_reviews_can_be_switched_off(settings):
    settings.policy.second_look_reviews = False
    model = Views("FEMALE_GENITALIA_EXPOSED", 0.41)
    assert _scan(settings, model).decision is Decision.REVIEW
    assert model.looked == []


def test_a_first_view_reject_is_never_accepted_however_empty_the_second_views(settings):
    verdict = _scan(settings, Views("FEMALE_GENITALIA_EXPOSED", 0.8))
    assert verdict.decision is Decision.REVIEW
    assert [r.code for r in verdict.reasons] == ["label_review"]


def test_an_animation_with_the_label_in_two_frames_keeps_its_review(settings):
    frames = [_busy(), ImageOps.mirror(_busy())]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    settings.media.isolation = "thread"
    model = Views("FEMALE_GENITALIA_EXPOSED", 0.41)
    verdict = build_scanner(settings, classifier=model).scan(buf.getvalue(), ScanContext())
    assert verdict.decision is Decision.REVIEW


# -- the real model: the dandelion, and weak real detections --------------------


@pytest.mark.parametrize(("longest", "fmt"), [(640, "PNG"), (1024, "PNG"), (1024, "JPEG")])
def test_the_dandelion_wallpaper_is_accepted_after_a_second_look(scanner, longest, fmt):
    """Ubuntu MATE's TwoWings (dandelion seeds on an orange blur): the model reads
    FEMALE_GENITALIA_EXPOSED at 0.33-0.40 at 320 px, 0 in the crop and at 512 px.
    (Mirrored at 1024 px it stays in review: there the second scale reads
    BUTTOCKS_EXPOSED at 0.40, and any label the policy acts on keeps a review.)"""
    from tests import photos

    picture = photos.picture("mate/nature/TwoWings.jpg", 1024).copy()
    picture.thumbnail((longest, longest))
    params = {"quality": 85} if fmt == "JPEG" else {}
    verdict = scanner.scan(encode(picture, fmt, **params), ScanContext())
    assert verdict.labels["FEMALE_GENITALIA_EXPOSED"] >= 0.3  # the misreading
    assert verdict.decision is Decision.ACCEPT
    assert [r.code for r in verdict.reasons] == ["label_cleared"]


def _weak_faces():
    """A photo of a person degraded until the model is unsure of the face: each
    case was seen to score FACE_* in the review band (bench/false_refusals.py)."""
    from skimage import data

    camera = Image.fromarray(data.camera()).convert("RGB")
    astronaut = Image.fromarray(data.astronaut()).convert("RGB")
    yield "camera thumbnail 200", camera.resize((200, 200), Image.Resampling.LANCZOS)
    yield "camera thumbnail 256", camera.resize((256, 256), Image.Resampling.LANCZOS)
    yield "camera jpeg q8", Image.open(io.BytesIO(encode(camera, "JPEG", quality=8)))
    mirrored = ImageOps.mirror(camera)
    yield "camera mirrored jpeg q15", Image.open(io.BytesIO(encode(mirrored, "JPEG", quality=15)))
    tint = np.clip(np.asarray(camera) * np.float32((0.7, 1.3, 0.7)), 0, 255).astype(np.uint8)
    yield "camera green, contrast 0.15", ImageEnhance.Contrast(Image.fromarray(tint)).enhance(0.15)
    small = astronaut.resize((179, 179), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", astronaut.size, (0, 0, 0))
    canvas.paste(small, (166, 83))
    yield "astronaut x0.35 on black", canvas


def test_weak_real_detections_keep_their_review(classifier):
    """The sensitivity proxy: faces take the exposed-body labels' place (a rule for
    both, at the default bands). Every weak real face stays in review."""
    seen = 0
    for name, picture in _weak_faces():
        image = picture.convert("RGB")
        result = classifier.classify([image])[0]
        for label in ("FACE_FEMALE", "FACE_MALE"):
            if not 0.3 <= result.scores[label] < 0.5:
                continue
            seen += 1
            others = {"FACE_FEMALE", "FACE_MALE"}
            policy = LabelPolicy.from_thresholds(dict.fromkeys(others, (0.5, 0.3)))
            decision, _ = second_look.judge(policy, classifier, [image], [result], result.scores)
            assert decision is Decision.REVIEW, (name, label)
    assert seen >= 4  # the degradations still leave the model unsure


# -- the policy's side, with score fixtures ------------------------------------------

EXPOSED = LabelPolicy.from_thresholds(
    {
        "BUTTOCKS_EXPOSED": (0.5, 0.3),
        "FEMALE_BREAST_EXPOSED": (0.5, 0.3),
        "FACE_FEMALE": (None, 0.9),
    }
)


@pytest.mark.parametrize(
    ("scores", "wanted"),
    [
        ({}, ()),
        ({"BUTTOCKS_EXPOSED": 0.29}, ()),
        ({"BUTTOCKS_EXPOSED": 0.30}, ("BUTTOCKS_EXPOSED",)),
        ({"BUTTOCKS_EXPOSED": 0.45, "FACE_FEMALE": 0.5}, ("BUTTOCKS_EXPOSED",)),
        ({"BUTTOCKS_EXPOSED": 0.45, "FACE_FEMALE": 0.95}, ()),  # two labels fire
        ({"BUTTOCKS_EXPOSED": 0.45, "FEMALE_BREAST_EXPOSED": 0.31}, ()),
        ({"BUTTOCKS_EXPOSED": 0.45, "FEMALE_BREAST_EXPOSED": 0.8}, ()),  # a reject: other path
        ({"BUTTOCKS_EXPOSED": 0.8}, ()),
    ],
)
def test_only_a_review_resting_on_one_label_is_looked_at_again(scores, wanted):
    assert EXPOSED.needs_review_look(scores) == wanted


@pytest.mark.parametrize(
    ("again", "decision", "code"),
    [
        (0.0, Decision.ACCEPT, "label_cleared"),
        (0.29, Decision.ACCEPT, "label_cleared"),
        (0.30, Decision.REVIEW, "label_review"),
    ],
)
def test_a_lone_review_is_cleared_only_under_its_review_threshold(again, decision, code):
    got, reasons = EXPOSED.judge({"BUTTOCKS_EXPOSED": 0.42}, {"BUTTOCKS_EXPOSED": again})
    assert got is decision
    assert [r.code for r in reasons] == [code]


def test_clearing_needs_the_second_look_on():
    strict = LabelPolicy(EXPOSED.rules, second_look=False)
    assert strict.needs_review_look({"BUTTOCKS_EXPOSED": 0.42}) == ()
    assert strict.judge({"BUTTOCKS_EXPOSED": 0.42}, {"BUTTOCKS_EXPOSED": 0.0})[0] is Decision.REVIEW
