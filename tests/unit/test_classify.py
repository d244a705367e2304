"""Classifier pre- and post-processing, checked against plain reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode, gradient
from warden.domain.verdict import Decision
from warden.media.classify import NUDENET_LABELS, letterbox, nms, postprocess, to_batch


@pytest.mark.parametrize(
    ("size", "canvas"),
    [
        ((640, 480), (256, 320)),
        ((480, 640), (320, 256)),
        ((1920, 1080), (192, 320)),
        ((300, 300), (320, 320)),
        ((5, 1000), (320, 32)),
    ],
)
def test_letterbox_keeps_aspect_and_pads_to_the_stride(size, canvas):
    arr, scale = letterbox(Image.new("RGB", size, (200, 100, 50)), 320)
    assert arr.shape[:2] == canvas
    assert arr.shape[0] % 32 == 0 and arr.shape[1] % 32 == 0
    assert scale == pytest.approx(320 / max(size))
    w, h = round(size[0] * scale), round(size[1] * scale)
    # the last row/column may blend with the black padding, as NudeNet's resize does
    assert (arr[: h - 1, : w - 1] == (200, 100, 50)).all()
    assert (arr[h + 1 :, :] == 0).all() and (arr[:, w + 1 :] == 0).all()


@pytest.mark.parametrize(
    "size", [(640, 480), (480, 640), (512, 512), (1000, 750), (451, 300), (200, 150), (1280, 333)]
)
def test_the_model_input_is_nudenets_own_pixel_for_pixel(size):
    """The canvas is NudeNet's padded, resized blob, cut at the stride: same pixels."""
    from nudenet.nudenet import _read_image

    image = gradient(*size, seed=1)
    canvas, _ = letterbox(image, 320)
    ours = to_batch([canvas])
    bgr = np.ascontiguousarray(np.asarray(image)[..., ::-1])
    blob = _read_image(bgr, 320)[0]
    h, w = canvas.shape[:2]
    assert blob.shape == (1, 3, 320, 320)
    assert np.array_equal(ours[0], blob[0, :, :h, :w])
    assert not blob[0, :, h:, :].any() and not blob[0, :, :, w:].any()


def test_batch_is_bgr_nchw_in_unit_range():
    canvas = np.zeros((32, 64, 3), np.uint8)
    canvas[..., 0] = 255  # red
    batch = to_batch([canvas, canvas])
    assert batch.shape == (2, 3, 32, 64) and batch.dtype == np.float32
    assert batch[0, 2].max() == 1.0 and batch[0, 0].max() == 0.0  # red lands in the last channel


def _iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _nms_reference(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def test_nms_matches_a_plain_greedy_reference():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(5, 80, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        scores = rng.uniform(0.25, 1, n)
        assert list(nms(boxes, scores, 0.45)) == _nms_reference(
            boxes.tolist(), scores.tolist(), 0.45
        )


def test_postprocess_takes_each_labels_best_score_after_suppression():
    anchors = 10
    out = np.zeros((1, 4 + len(NUDENET_LABELS), anchors), np.float32)
    face = NUDENET_LABELS.index("FACE_FEMALE")
    feet = NUDENET_LABELS.index("FEET_EXPOSED")
    # two overlapping face boxes (the weaker is suppressed), one separate feet box, one below the cut
    for a, (cx, cy, w, h, cls, score) in enumerate(
        [
            (100, 100, 50, 50, face, 0.9),
            (102, 101, 50, 50, face, 0.8),
            (250, 250, 40, 40, feet, 0.6),
            (50, 250, 20, 20, feet, 0.2),
        ]
    ):
        out[0, :4, a] = (cx, cy, w, h)
        out[0, 4 + cls, a] = score
    [result] = postprocess(out, [0.5], [(640, 640)], NUDENET_LABELS, 0.25)
    assert result.scores["FACE_FEMALE"] == pytest.approx(0.9)
    assert result.scores["FEET_EXPOSED"] == pytest.approx(0.6)
    assert len(result.detections) == 2
    face_box = next(d for d in result.detections if d.label == "FACE_FEMALE").box
    assert face_box == pytest.approx((150.0, 150.0, 100.0, 100.0))  # canvas -> image coordinates


def test_postprocess_handles_empty_batches():
    out = np.zeros((3, 4 + len(NUDENET_LABELS), 5), np.float32)
    results = postprocess(out, [1, 1, 1], [(320, 320)] * 3, NUDENET_LABELS, 0.25)
    assert [max(r.scores.values()) for r in results] == [0, 0, 0]


def test_mixed_shapes_in_one_call_keep_their_order(classifier, astronaut):
    wide = gradient(1280, 720)
    tall = astronaut.resize((300, 600))
    together = classifier.classify([wide, astronaut, tall])
    alone = [classifier.classify([im])[0] for im in (wide, astronaut, tall)]
    for t, a in zip(together, alone, strict=True):
        for label in NUDENET_LABELS:
            assert t.scores[label] == pytest.approx(a.scores[label], abs=1e-4)
    assert together[1].scores["FACE_FEMALE"] > 0.5


def test_int8_copy_is_made_once_and_decides_like_float(tmp_path, astronaut):
    from tests.conftest import encode
    from warden.config import LabelThreshold, load_settings
    from warden.services import build_scanner

    settings = load_settings(None, data_dir=tmp_path)
    settings.model.precision = "int8"
    settings.policy.labels["FACE_FEMALE"] = LabelThreshold(reject=0.4)
    scanner = build_scanner(settings, require_model=True)
    made = list((tmp_path / "models").glob("*-int8.onnx"))
    assert len(made) == 1
    verdict = scanner.scan(encode(astronaut))
    assert verdict.decision is Decision.REJECT
    # within issue 17's 0.05 of float (~0.75); the first int8 recipe capped every
    # score at 0.500 (its synthetic calibration clipped the class logits at 0)
    settings.model.precision = "float"
    floated = build_scanner(settings, require_model=True).scan(encode(astronaut))
    assert abs(verdict.labels["FACE_FEMALE"] - floated.labels["FACE_FEMALE"]) <= 0.05
    settings.model.precision = "int8"
    build_scanner(settings, require_model=True)
    assert list((tmp_path / "models").glob("*-int8.onnx")) == made


AGREEMENT_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "colorwheel",
    "moon",
    "coins",
    "immunohistochemistry",
)


def _agreement_cases():
    from skimage import data

    for name in AGREEMENT_PHOTOS:
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        yield name, photo
        # larger copies, which Warden decodes in draft mode (DCT scaling)
        for longest in (1024, 1600):
            scale = longest / max(photo.size)
            size = (round(photo.width * scale), round(photo.height * scale))
            yield f"{name}@{longest}", photo.resize(size, Image.Resampling.LANCZOS)
    for seed in range(3):  # noise-textured synthetics: at their own size only (see below)
        yield f"gradient{seed}", gradient(640, 480, seed=seed)


def test_scores_agree_with_nudenets_own_detect_within_005(settings, classifier):
    """Same JPEG bytes to `NudeDetector.detect` (cv2 decode, as NudeNet reads a path)
    and to the scanner: every label's best score within 0.05.

    Scores under 0.25 count as 0.25: NudeNet reports nothing below it. The
    synthetic gradients are compared at their own size only: enlarged, their
    pixel noise is averaged by Warden's draft decoding and sampled by NudeNet's
    resize, and they differ by up to 0.19 (bench/score_agreement.py).
    """
    import cv2
    from nudenet import NudeDetector

    from warden.media.pipeline import ScanContext
    from warden.services import build_scanner

    detector = NudeDetector()
    scanner = build_scanner(settings, classifier=classifier)
    seen = set()
    for name, image in _agreement_cases():
        payload = encode(image, "JPEG", quality=90)
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        reference = dict.fromkeys(NUDENET_LABELS, 0.0)
        for det in detector.detect(bgr):
            reference[det["class"]] = max(reference[det["class"]], det["score"])
        ours = scanner.scan(payload, ScanContext()).labels
        for label in NUDENET_LABELS:
            diff = abs(max(reference[label], 0.25) - max(ours[label], 0.25))
            assert diff <= 0.05, (
                f"{name}: {label} reference {reference[label]:.3f}, ours {ours[label]:.3f}"
            )
            if reference[label] >= 0.25:
                seen.add(label)
    assert {"FACE_FEMALE", "FACE_MALE", "BUTTOCKS_EXPOSED"} <= seen  # the comparison bites
