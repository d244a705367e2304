"""The second look: other views of a picture before a single-label hit refuses it.

A detector's chance hits on ordinary pictures (a colour wheel as buttocks, a
sea lion cut out on white) tend to depend on the one view it was given: the
scale, the framing. Real detections survive a change of view. So when a reject
rests on one label alone (`LabelPolicy.needs_second_look`), the frame behind
that label's best score is seen again, twice:

- a tighter crop: the detection's box with half its size added on every side,
  which the model then sees larger (skipped when the crop would be most of the
  picture again);
- a second scale: the whole frame with its longest side at 512 instead of 320
  (when the classifier can run at another size, `MultiScale`).

The label's best score over these views goes to the policy, which keeps the
reject only if a second view reaches the reject threshold too, and otherwise
sends the media to review.

A third view must agree for an exposed-body label: the colours inside the box.
The model barely uses colour (the colour wheel scores 0.81 as BUTTOCKS_EXPOSED
in grayscale, 0.86 hue-rotated, 0.84 mirrored, and still 0.50-0.58 at the
second scale: no view of shape or scale tells it apart from a real hit), so
colour is the view that is independent of the first. Exposed skin is
skin-toned: in YCrCb, skin of every complexion falls in a small chroma window
(Chai & Ngan 1999: Cr 133-173, Cb 77-127), which a box of saturated
non-skin colours (the wheel: 7 % of its pixels; the astronaut's face: 91 %)
does not fill. A box that is mostly grey (black-and-white photos, dim light)
says nothing about skin and never vetoes. A veto sends the reject to review:
a tinted picture (blue light, a colour filter) loses its reject but is still
held for a moderator, never accepted.

A review that rests on one label alone (nothing rejects, no other label
fires) gets the crop and the second scale too (`review_again`), and is
accepted, with a `label_cleared` reason, when neither shows anything the
policy acts on: a dandelion wallpaper read as FEMALE_GENITALIA_EXPOSED at
0.33-0.41 scores 0 in both. Only where the views can show something new:
not for thumbnails, small boxes (a crop magnified more than twice) or
washed-out boxes, where real weak detections vanish too; and never on colour.
The bounds were set against a sensitivity proxy of weak real detections
(faces in degraded photos of people, bench/false_refusals.py): 92 in the
review band, none cleared.

If the second look itself fails, the first view's decision stands: it can
only soften a decision, never lose one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from warden.domain.policy import LabelPolicy, decision_for
from warden.domain.verdict import Decision, Reason
from warden.media.classify import Classification, Classifier, Detection, MultiScale

log = logging.getLogger(__name__)

#: Longest side of the model's own view, and of the second scale.
FIRST_SCALE = 320
SECOND_SCALE = 512
#: Clearing a review: the most a second view may magnify the frame's pixels.
MAX_MAGNIFICATION = 2.0
#: Clearing a review: the least brightness spread (95th - 5th percentile) in the box.
MIN_LUMA_SPREAD = 64
#: Share of the box's width and height added on each side for the crop.
CROP_MARGIN = 0.5
#: A crop covering more than this share of the frame is not another view.
CROP_MAX_AREA = 0.5
#: Smallest crop side in pixels worth showing the model.
CROP_MIN_SIDE = 32
#: Skin chroma window in YCrCb (Chai & Ngan, "Face segmentation using skin-color
#: map", IEEE TCSVT 9(4), 1999), inclusive.
SKIN_CR = (133, 173)
SKIN_CB = (77, 127)
#: Distance from grey (in Cr/Cb units) above which a pixel counts as coloured.
COLOURED_CHROMA = 12.0
#: A box is a colour view only when at least this share of it is coloured.
COLOURED_SHARE = 0.5
#: Least share of a colour box that must be skin-toned for an exposed-body reject.
MIN_SKIN_SHARE = 0.15
#: Labels the colour view applies to: exposed skin.
SKIN_SUFFIX = "_EXPOSED"


def crop_around(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image | None:
    """The box with `CROP_MARGIN` around it, clipped to the image (None: no new view)."""
    x, y, w, h = box
    left = max(0, int(x - w * CROP_MARGIN))
    top = max(0, int(y - h * CROP_MARGIN))
    right = min(image.width, int(x + w * (1 + CROP_MARGIN)) + 1)
    bottom = min(image.height, int(y + h * (1 + CROP_MARGIN)) + 1)
    if right - left < CROP_MIN_SIDE or bottom - top < CROP_MIN_SIDE:
        return None
    if (right - left) * (bottom - top) > CROP_MAX_AREA * image.width * image.height:
        return None
    return image.crop((left, top, right, bottom))


def skin_share(image: Image.Image, box: tuple[float, float, float, float]) -> float | None:
    """The skin-toned share of the box's pixels, or None when the box is mostly
    grey (then colour says nothing) or empty."""
    x, y, w, h = box
    left, top = max(0, int(x)), max(0, int(y))
    right, bottom = min(image.width, int(x + w) + 1), min(image.height, int(y + h) + 1)
    if right - left < 2 or bottom - top < 2:
        return None
    rgb = np.asarray(image.crop((left, top, right, bottom)).convert("RGB"))
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr = ycc[..., 1].astype(np.int16)
    cb = ycc[..., 2].astype(np.int16)
    coloured = np.hypot(cr - 128, cb - 128) > COLOURED_CHROMA
    if coloured.mean() < COLOURED_SHARE:
        return None
    skin = (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])
    return float(skin.mean())


def colour_vetoes(
    frames: Sequence[Image.Image], results: Sequence[Classification], labels: Sequence[str]
) -> dict[str, float]:
    """The exposed-body labels whose best box holds too little skin colour, with
    the skin-toned share of that box."""
    vetoes: dict[str, float] = {}
    for label in labels:
        if not results or not label.endswith(SKIN_SUFFIX):
            continue
        frame, detection = _best(label, results)
        if detection is None:
            continue
        share = skin_share(frames[frame], detection.box)
        if share is not None and share < MIN_SKIN_SHARE:
            vetoes[label] = share
    return vetoes


def _colour_review(reason: Reason, share: float) -> Reason:
    detail = dict(reason.detail)
    label, score = detail["label"], float(detail["score"])
    detail["skin_share"] = round(share, 4)
    return Reason(
        "label_review",
        f"{label} scored {score:.2f} (refused at {float(detail['threshold']):.2f}), but only "
        f"{share:.0%} of its box is skin-coloured: sent to review",
        detail,
    )


def _best(label: str, results: Sequence[Classification]) -> tuple[int, Detection | None]:
    """The frame where `label` scored best, and the box behind that score."""
    frame = max(range(len(results)), key=lambda i: results[i].scores.get(label, 0.0))
    boxes = [d for d in results[frame].detections if d.label == label]
    return frame, max(boxes, key=lambda d: d.score, default=None)


def look_again(
    classifier: Classifier,
    frames: Sequence[Image.Image],
    results: Sequence[Classification],
    labels: Sequence[str],
) -> dict[str, float]:
    """Each label's best score over the second views (labels with no view are left out)."""
    again: dict[str, float] = {}
    for label in labels:
        if not results:
            continue
        frame, detection = _best(label, results)
        image = frames[frame]
        scores: list[float] = []
        crop = None if detection is None else crop_around(image, detection.box)
        if crop is not None:
            scores.append(classifier.classify([crop])[0].scores.get(label, 0.0))
        if isinstance(classifier, MultiScale):
            wider = classifier.classify_at([image], SECOND_SCALE)[0]
            scores.append(wider.scores.get(label, 0.0))
        if scores:
            again[label] = max(scores)
    return again


def luma_spread(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """The spread of brightness inside the box: 95th minus 5th percentile, 0-255."""
    x, y, w, h = box
    left, top = max(0, int(x)), max(0, int(y))
    right, bottom = min(image.width, int(x + w) + 1), min(image.height, int(y + h) + 1)
    if right - left < 2 or bottom - top < 2:
        return 0.0
    luma = np.asarray(image.crop((left, top, right, bottom)).convert("L"))
    low, high = np.percentile(luma, (5, 95))
    return float(high - low)


def review_again(
    policy: LabelPolicy,
    classifier: Classifier,
    frames: Sequence[Image.Image],
    results: Sequence[Classification],
    label: str,
) -> float | None:
    """The label's best score in the second views when they clear a lone review;
    None when the review stands.

    Both views must show the model something it did not see well before, and
    neither may show anything the policy acts on, in any label (a weak real
    hit read as a neighbouring label up close is still a hit):

    - the crop, magnified at most `MAX_MAGNIFICATION` times (a small box blown
      up adds blur, not detail, and weakens real detections as much as chance
      ones: a face in a 128-pixel thumbnail, 0.34 at first, 0.00 up close);
    - the second scale, when the frame has the pixels for it (the same bound);
    - and the box must have contrast to show (`MIN_LUMA_SPREAD`): a washed-out
      face scores 0.45 at first and 0.00 in both views.

    Colour never clears a review: a colour filter would then be a way to pass
    (a green-tinted, slightly blurred face: 0.46 at first, 0.28 up close, 0.55
    at the second scale, with no skin tones in its box).
    """
    if sum(policy.acts_on(r.scores) for r in results) != 1:
        return None  # a second frame at review level corroborates it
    frame, detection = _best(label, results)
    if detection is None:
        return None
    image = frames[frame]
    if not isinstance(classifier, MultiScale) or (
        max(image.size) * MAX_MAGNIFICATION < SECOND_SCALE
    ):
        return None
    if luma_spread(image, detection.box) < MIN_LUMA_SPREAD:
        return None
    crop = crop_around(image, detection.box)
    if crop is None or max(crop.size) * MAX_MAGNIFICATION < FIRST_SCALE:
        return None
    close = classifier.classify([crop])[0].scores
    if policy.acts_on(close):
        return None
    wider = classifier.classify_at([image], SECOND_SCALE)[0].scores
    if policy.acts_on(wider):
        return None
    return max(close.get(label, 0.0), wider.get(label, 0.0))


def judge(
    policy: LabelPolicy,
    classifier: Classifier,
    frames: Sequence[Image.Image],
    results: Sequence[Classification],
    scores: Mapping[str, float],
) -> tuple[Decision, tuple[Reason, ...]]:
    """The policy's decision, with a second look at a reject that rests on one label
    (the other views of the model, `look_again`, then the colour view) or at a
    review that does (`review_again`)."""
    labels = policy.needs_second_look(scores)
    reviews = () if labels else policy.needs_review_look(scores)
    if not labels and not reviews:
        return policy.judge(scores)
    try:
        if reviews:
            cleared = review_again(policy, classifier, frames, results, reviews[0])
        else:
            again = look_again(classifier, frames, results, labels)
            vetoes = colour_vetoes(frames, results, labels)
    except Exception:  # the first view's decision stands
        log.exception("second look failed; the first view decides")
        return policy.judge(scores)
    if reviews:
        if cleared is None:
            return policy.judge(scores)
        return policy.judge(scores, {reviews[0]: cleared})
    decision, reasons = policy.judge(scores, again)
    if decision is not Decision.REJECT or not vetoes:
        return decision, reasons
    softened = [
        _colour_review(r, vetoes[r.detail["label"]])
        if r.code == "label_reject" and r.detail.get("label") in vetoes
        else r
        for r in reasons
    ]
    softened.sort(key=lambda r: (r.code != "label_reject", -float(r.detail["score"])))
    return decision_for(softened), tuple(softened)
