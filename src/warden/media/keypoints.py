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
The nearest descriptor is looked up in multi-index tables (16-bit pieces of the
descriptor), not by brute force over every held descriptor: brute force costs
about 0.9 ms per held picture per query (and OpenCV's matcher refuses more than
2**18 held descriptors, about 520 pictures, at once); the tables cost about 4 ms
at 1,000 held pictures and verify the same pictures on the corpus
(`bench/keypoint_stage.py`, tests/banks/test_keypoint_stage.py). Sized for the
thousands of pictures an instance flags itself, not for millions.

The scanner's stage around this index (held pictures per bank entry, the
decision) is media/keypoint_stage.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
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
#: 16-bit pieces a descriptor is cut into for the candidate tables (256 bits = 16 x 16).
CHUNKS = 16
#: A held descriptor farther than this (bits of 256) from a query descriptor is no vote.
NEAR_BITS = 64
#: Table buckets fuller than this many times the average (and than MIN_BUCKET) are
#: skipped: a 16-bit value that many held patches share (flat or repeated patches)
#: says little and costs a distance per patch. At 1,000 held pictures (500,000
#: descriptors, 7.6 a bucket on average) this keeps a query near 40,000 distances.
BUCKET_FACTOR = 4
MIN_BUCKET = 16
#: Votes (distinct held descriptors) a held picture needs before it is verified. On
#: the corpus an edited copy (10 % crops, 5 degree turns, screenshots) drew at least 27
#: and unrelated pictures up to 34, so the floor decides nothing alone: it only spares
#: RANSAC for pictures with next to nothing in common with the query.
VOTE_FLOOR = 12


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


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of uint64 words (NumPy 2's `bitwise_count`, else a byte table)."""
    count = getattr(np, "bitwise_count", None)
    if count is not None:
        bits = np.asarray(count(words), np.uint8)
    else:
        bits = np.asarray([bin(i).count("1") for i in range(256)], np.uint8)[words.view(np.uint8)]
    return np.asarray(bits.sum(axis=1, dtype=np.int32))


@dataclass(frozen=True)
class _Tables:
    """The held descriptors and their multi-index tables, built once per change and
    swapped whole (a query reads one consistent snapshot without a lock)."""

    held: dict[int, Features]
    words: np.ndarray  # (n, 4) uint64: the descriptors, for exact distances
    owner: np.ndarray  # (n,) int64: the entry each descriptor belongs to
    order: np.ndarray  # (CHUNKS * n,) int32: descriptor rows sorted by each chunk's value
    offsets: np.ndarray  # (CHUNKS, 65537) int64: where each chunk value starts in `order`

    @classmethod
    def build(cls, held: dict[int, Features]) -> _Tables:
        kept = [(e, f) for e, f in held.items() if len(f)]
        stack = (
            np.ascontiguousarray(np.concatenate([f.descriptors for _, f in kept]))
            if kept
            else np.empty((0, 32), np.uint8)
        )
        owner = (
            np.concatenate([np.full(len(f), e, np.int64) for e, f in kept])
            if kept
            else np.empty(0, np.int64)
        )
        n = len(stack)
        chunks = stack.view(np.uint16)  # (n, CHUNKS)
        order = np.empty(CHUNKS * n, np.int32)
        offsets = np.zeros((CHUNKS, 65537), np.int64)
        for c in range(CHUNKS):
            keys = chunks[:, c]
            order[c * n : (c + 1) * n] = np.argsort(keys, kind="stable")
            offsets[c, 1:] = np.cumsum(np.bincount(keys, minlength=65536)) + c * n
            offsets[c, 0] = c * n
        return cls(held, stack.view(np.uint64), owner, order, offsets)


class KeypointIndex:
    """The features of every held picture; thread-safe, copy-on-write updates.

    Candidates come from multi-index hashing: each 256-bit descriptor is cut into
    16 pieces of 16 bits, and a held descriptor is a candidate neighbour of a query
    descriptor when one piece is equal (two ORB descriptors of the same patch differ
    in a few bits, so most share a piece; unrelated ones differ in about half). Each
    query descriptor's nearest candidate within NEAR_BITS votes for its picture, and
    the pictures with the most votes (at least VOTE_FLOOR) are verified by RANSAC.
    About 1-3 ms at 1,000 held pictures where a brute-force vote over all held
    descriptors takes a second (`bench/keypoint_stage.py`); `brute_votes` is that
    reference, and a test shows both verify the same pictures on the corpus."""

    def __init__(self, min_inliers: int = MIN_INLIERS) -> None:
        self.min_inliers = min_inliers
        self._held: dict[int, Features] = {}
        self._tables = _Tables.build(self._held)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, entry: object) -> bool:
        return entry in self._held

    def add(self, entry: int, image: Image.Image) -> Features:
        """Describe a held picture and keep it under `entry`."""
        found = features(image)
        self.add_features(entry, found)
        return found

    def add_features(self, entry: int, found: Features) -> None:
        """Keep one more picture; the tables are rebuilt at the next query, so that an
        index built picture by picture (benches, tests) costs one build, not one each."""
        with self._lock:
            self._held = {**self._held, entry: found}

    def remove(self, entry: int) -> None:
        """Drop one picture; the tables are rebuilt at the next query."""
        with self._lock:
            held = dict(self._held)
            held.pop(entry, None)
            self._held = held

    def update(self, added: dict[int, Features], removed: Iterable[int]) -> None:
        """Add (or replace) and remove held pictures, rebuilding the tables now (off
        the request path: the sync's thread) and once for the whole batch."""
        with self._lock:
            held = dict(self._held)
            for entry in removed:
                held.pop(entry, None)
            held.update(added)
            self._held, self._tables = held, _Tables.build(held)

    def replace(self, held: dict[int, Features]) -> None:
        """Hold exactly these pictures (a full load), tables built now."""
        with self._lock:
            self._held = dict(held)
            self._tables = _Tables.build(self._held)

    def entries(self) -> set[int]:
        return set(self._held)

    def _current(self) -> _Tables:
        """The tables of the pictures held now (rebuilt if `add_features` or `remove`
        changed them since)."""
        tables = self._tables
        if tables.held is self._held:
            return tables
        with self._lock:
            if self._tables.held is not self._held:
                self._tables = _Tables.build(self._held)
            return self._tables

    def match(self, image: Image.Image) -> list[KeypointMatch]:
        """Held pictures this one shows (at least `min_inliers`), most inliers first."""
        return self.match_features(features(image))

    def match_features(self, query: Features) -> list[KeypointMatch]:
        tables = self._current()
        if len(query) < 2 or not len(tables.owner):
            return []
        return self._verify(tables, query, self.candidates(query, tables))

    def candidates(self, query: Features, tables: _Tables | None = None) -> list[int]:
        """The held pictures worth verifying: most votes first, at least VOTE_FLOOR."""
        tables = tables or self._current()
        return _top(tables, _mih_votes(tables, query))

    def brute_candidates(self, query: Features) -> list[int]:
        """`candidates` by comparing every query descriptor with every held one: the
        reference the tables must agree with (tests), far too slow past a few hundred
        held pictures."""
        tables = self._current()
        return _top(tables, _brute_votes(tables, query))

    def _verify(self, tables: _Tables, query: Features, best: list[int]) -> list[KeypointMatch]:
        found = [KeypointMatch(e, inliers(query, tables.held[e])) for e in best]
        found = [m for m in found if m.inliers >= self.min_inliers]
        return sorted(found, key=lambda m: -m.inliers)


def _top(tables: _Tables, nearest: np.ndarray) -> list[int]:
    """Entries by votes: each held descriptor that is some query descriptor's nearest
    (-1: none) votes once for its picture (a flat patch that many query patches land
    on is one piece of evidence, as in `_good_pairs`)."""
    owners = tables.owner[np.unique(nearest[nearest >= 0])]
    if not len(owners):
        return []
    entries, votes = np.unique(owners, return_counts=True)
    ranked = np.argsort(-votes, kind="stable")[:CANDIDATES]
    return [int(entries[i]) for i in ranked if votes[i] >= VOTE_FLOOR]


def _mih_votes(tables: _Tables, query: Features) -> np.ndarray:
    """Each query descriptor's nearest held descriptor among those sharing a 16-bit
    piece with it, within NEAR_BITS (-1: none)."""
    q = np.ascontiguousarray(query.descriptors)
    m = len(q)
    keys = q.view(np.uint16).astype(np.int64)  # (m, CHUNKS)
    rows = np.arange(CHUNKS)[None, :]
    starts = tables.offsets[rows, keys]
    lengths = tables.offsets[rows, keys + 1] - starts
    lengths[lengths > max(MIN_BUCKET, BUCKET_FACTOR * len(tables.owner) >> 16)] = 0
    flat_len = lengths.ravel()
    total = int(flat_len.sum())
    nearest = np.full(m, -1, np.int64)
    if total == 0:
        return nearest
    flat_start = starts.ravel()
    ends = np.cumsum(flat_len)
    positions = np.arange(total) - np.repeat(ends - flat_len, flat_len)
    positions += np.repeat(flat_start, flat_len)
    held_rows = tables.order[positions].astype(np.int64)
    query_rows = np.repeat(np.repeat(np.arange(m), CHUNKS), flat_len)
    distance = _popcount(tables.words[held_rows] ^ q.view(np.uint64)[query_rows])
    near = distance <= NEAR_BITS
    query_rows, held_rows, distance = query_rows[near], held_rows[near], distance[near]
    if not len(distance):
        return nearest
    # per query: the nearest, then the lowest row (one sort of a composite key)
    key = np.sort((query_rows << 40) | (distance.astype(np.int64) << 32) | held_rows)
    first = np.ones(len(key), bool)
    first[1:] = (key[1:] >> 40) != (key[:-1] >> 40)
    nearest[key[first] >> 40] = key[first] & 0xFFFFFFFF
    return nearest


def _brute_votes(tables: _Tables, query: Features, block: int = 200_000) -> np.ndarray:
    """`_mih_votes` over every held descriptor: OpenCV's brute-force matcher, in blocks
    (it refuses more than 2**18 training rows at once)."""
    stack = tables.words.view(np.uint8).reshape(-1, 32)
    best = np.full(len(query), NEAR_BITS + 1, np.int64)
    nearest = np.full(len(query), -1, np.int64)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    for at in range(0, len(stack), block):
        for m in matcher.match(query.descriptors, stack[at : at + block]):
            if m.distance < best[m.queryIdx]:
                best[m.queryIdx], nearest[m.queryIdx] = int(m.distance), m.trainIdx + at
    return nearest
