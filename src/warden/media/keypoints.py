"""Local features: the same picture after crops and small rotations, for media Warden holds.

A PDQ hash describes the whole frame, so a 5 % crop or a 3 degree turn moves it
past any safe threshold. ORB keypoints (OpenCV, already a dependency for the
classifier's resizing) describe small patches; two pictures are the same when
many patch matches agree on one similarity transform (shift, scale, rotation),
found by RANSAC. This needs the *image* on the bank side, so it works only for
media Warden holds itself (flagged files, preserved evidence), never for
hash-only lists (NCMEC, feeds).

How many agreeing matches ("inliers") make a match is set from data:
`bench/hash_robustness.py` counts the inliers between every edited copy of each
photograph of the robustness corpus and every other photograph. The issue's
prototype saw up to 46 between unrelated photos; most of those were one held
patch matched by many query patches (repeated texture) or a transform that
shrinks a picture to a point. Counting each held keypoint once and refusing
scales beyond 4x leaves at most 4 inliers between distinct photos on the corpus
(2,900 pairs), against at least 39 (usually hundreds) for the same photo cropped
10 %, turned 5 degrees, bordered or captioned: `MIN_INLIERS` = 20, five times the
worst unrelated pair (a test keeps it above twice that). Small copies (25 %) and
mirror images have too few matching patches; the PDQ hashes find those. A larger
corpus should confirm the threshold.

`KeypointIndex` holds the features of every held picture and finds candidates
by voting: each query descriptor's nearest held descriptor (Hamming) votes for
its picture; the few pictures with the most votes are verified geometrically.
The vote is brute force over all held descriptors (about 0.1 ms per held
picture per query on one core): fine for the thousands of pictures an instance
flags itself, not for millions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

#: Keypoints kept per picture (ORB's strongest).
FEATURES = 500
#: FAST corner threshold (OpenCV's default is 20; see `features`).
FAST_THRESHOLD = 10
#: Pictures are described at this longer side (the scanning frame is about this size).
SIDE = 512
#: Lowe's ratio: a descriptor match counts when clearly nearer than the second best.
RATIO = 0.8
#: Agreeing matches needed to call two pictures the same (set from data, see above).
MIN_INLIERS = 20
#: Pictures verified geometrically per query, the ones with the most votes.
CANDIDATES = 3
#: Smallest scale between the two pictures that is believed (and its inverse the largest).
MIN_SCALE = 0.25
#: RANSAC reprojection error, in pixels at SIDE.
REPROJECTION_PX = 6.0


@dataclass(frozen=True)
class Features:
    """A picture's keypoints: their positions (n, 2) and ORB descriptors (n, 32)."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def features(image: Image.Image) -> Features:
    """ORB keypoints of a picture, described at SIDE pixels on its longer side."""
    grey = image.convert("L")
    scale = SIDE / max(grey.size)
    if scale < 1:
        grey = grey.resize(
            (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
            Image.Resampling.BOX,
        )
    # a low-contrast picture (a micrograph, a misty scene) gives FAST few corners at
    # its default threshold: spread the grey levels first, and ask for fainter corners
    pixels = cv2.equalizeHist(np.ascontiguousarray(np.asarray(grey)))
    orb = cv2.ORB.create(nfeatures=FEATURES, fastThreshold=FAST_THRESHOLD)
    keypoints, descriptors = orb.detectAndCompute(pixels, None)
    if descriptors is None or not keypoints:
        return Features(np.empty((0, 2), np.float32), np.empty((0, 32), np.uint8))
    points = np.asarray([k.pt for k in keypoints], dtype=np.float32)
    return Features(points, descriptors)


def _good_pairs(query: Features, held: Features) -> tuple[np.ndarray, np.ndarray]:
    """Positions of descriptor matches that pass the ratio test (query, held), one per
    held keypoint: many query patches landing on one held patch (a repeated texture)
    are one piece of evidence, not many."""
    if len(query) < 2 or len(held) < 2:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    best: dict[int, tuple[float, int]] = {}
    for pair in matcher.knnMatch(query.descriptors, held.descriptors, k=2):
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            m = pair[0]
            if m.trainIdx not in best or m.distance < best[m.trainIdx][0]:
                best[m.trainIdx] = (m.distance, m.queryIdx)
    h_idx = list(best)
    q_idx = [best[h][1] for h in h_idx]
    return query.points[q_idx], held.points[h_idx]


def inliers(query: Features, held: Features) -> int:
    """Descriptor matches that agree on one plausible similarity transform (RANSAC):
    a scale between MIN_SCALE and 1/MIN_SCALE (a transform that shrinks one picture
    to a point makes every match agree, and proves nothing)."""
    src, dst = _good_pairs(query, held)
    if len(src) < 3:
        return 0
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX, maxIters=500
    )
    if transform is None or mask is None:
        return 0
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not MIN_SCALE <= scale <= 1 / MIN_SCALE:
        return 0
    return int(mask.sum())


@dataclass(frozen=True)
class KeypointMatch:
    """A held picture that the query shows: its entry and the agreeing matches."""

    entry: int
    inliers: int


class KeypointIndex:
    """The features of every held picture; thread-safe, copy-on-write updates."""

    def __init__(self, min_inliers: int = MIN_INLIERS) -> None:
        self.min_inliers = min_inliers
        self._held: dict[int, Features] = {}
        self._stack = np.empty((0, 32), np.uint8)
        self._owner = np.empty(0, np.int64)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def add(self, entry: int, image: Image.Image) -> Features:
        """Describe a held picture and keep it under `entry`."""
        found = features(image)
        self.add_features(entry, found)
        return found

    def add_features(self, entry: int, found: Features) -> None:
        with self._lock:
            held = dict(self._held)
            held[entry] = found
            self._rebuild(held)

    def remove(self, entry: int) -> None:
        with self._lock:
            held = dict(self._held)
            held.pop(entry, None)
            self._rebuild(held)

    def _rebuild(self, held: dict[int, Features]) -> None:
        stack = [f.descriptors for f in held.values() if len(f)]
        owner = [np.full(len(f), e, np.int64) for e, f in held.items() if len(f)]
        self._stack = np.concatenate(stack) if stack else np.empty((0, 32), np.uint8)
        self._owner = np.concatenate(owner) if owner else np.empty(0, np.int64)
        self._held = held

    def match(self, image: Image.Image) -> list[KeypointMatch]:
        """Held pictures this one shows (at least `min_inliers`), most inliers first."""
        return self.match_features(features(image))

    def match_features(self, query: Features) -> list[KeypointMatch]:
        held, stack, owner = self._held, self._stack, self._owner
        if len(query) < 2 or not len(stack):
            return []
        nearest = cv2.BFMatcher(cv2.NORM_HAMMING).match(query.descriptors, stack)
        votes = np.bincount(
            np.searchsorted(np.unique(owner), owner[[m.trainIdx for m in nearest]]),
            minlength=len(np.unique(owner)),
        )
        entries = np.unique(owner)
        best = entries[np.argsort(-votes, kind="stable")[:CANDIDATES]]
        found = [KeypointMatch(int(e), inliers(query, held[int(e)])) for e in best]
        found = [m for m in found if m.inliers >= self.min_inliers]
        return sorted(found, key=lambda m: -m.inliers)
