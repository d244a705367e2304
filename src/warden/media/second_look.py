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
sends the media to review. If the second look itself fails, the first view's
decision stands: it can only soften a decision, never lose one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from PIL import Image

from warden.domain.policy import LabelPolicy
from warden.domain.verdict import Decision, Reason
from warden.media.classify import Classification, Classifier, Detection, MultiScale

log = logging.getLogger(__name__)

#: Longest side of the second scale (the model's own view is 320).
SECOND_SCALE = 512
#: Share of the box's width and height added on each side for the crop.
CROP_MARGIN = 0.5
#: A crop covering more than this share of the frame is not another view.
CROP_MAX_AREA = 0.5
#: Smallest crop side in pixels worth showing the model.
CROP_MIN_SIDE = 32


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


def judge(
    policy: LabelPolicy,
    classifier: Classifier,
    frames: Sequence[Image.Image],
    results: Sequence[Classification],
    scores: Mapping[str, float],
) -> tuple[Decision, tuple[Reason, ...]]:
    """The policy's decision, with a second look at a reject that rests on one label."""
    labels = policy.needs_second_look(scores)
    if not labels:
        return policy.judge(scores)
    try:
        again = look_again(classifier, frames, results, labels)
    except Exception:  # the first view's decision stands
        log.exception("second look failed; the first view decides")
        return policy.judge(scores)
    return policy.judge(scores, again)
