"""The robustness corpus of issue 16: ordinary photographs, the edits re-posters make, and
the bookkeeping that turns "banked, edited, matched" into rates and false pairs.

Photographs come from two packages (no download): scikit-image's `skimage.data`
(the colour and grey photographs, not the synthetic or microscopy-only images;
about 512 px) and the 25 photographs of `tests/photos.py` (Debian wallpaper
packages: landscapes, flowers, animals, rooms; brought to 1024 px on the longer
side, as a phone upload is). Every edit is made here with Pillow; each edited
copy is encoded (JPEG quality 90 unless the edit is about JPEG), decoded by
Warden's own decoder (draft mode, scanning size) and hashed as the scanner
hashes it.

Matching is brute force over the few hashes each side has (exact, no index):
what is measured is the hashes, not the index (`bench/hash_match.py` does that).
Every way of hashing is computed once per picture and kept (`hashes`), so the
tests' several outcomes share the work.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from tests import photos as debian
from warden.media import keypoints
from warden.media.decode import DecodeLimits, decode

#: Photographs of scenes and objects in skimage.data (camera, moon and coins are grey).
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "rocket",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "moon",
    "coins",
    "cell",
)
#: The photographs of tests/photos.py, by file stem (Debian packages).
DEBIAN_PHOTOS = tuple(Path(name).stem for name in debian.PHOTOGRAPHS)
#: Longer side the Debian photographs are brought to before any edit.
DEBIAN_SIDE = 1024
PHOTOS = (*SKIMAGE_PHOTOS, *DEBIAN_PHOTOS)
#: Photographs of textures: PDQ of a texture is unstable by nature (its low frequencies
#: are weak), and they are the likeliest to collide; rates are reported apart, and they
#: take part in every false-pair count.
TEXTURES = ("grass", "gravel", "brick")

THRESHOLD = 31
MIN_QUALITY = 50


@cache
def photos() -> dict[str, Image.Image]:
    """Every picture of the corpus by name: scikit-image's photographs and textures,
    then the Debian photographs (the order turns the one-sided crop's side)."""
    from skimage import data  # test-only dependency, imported when the corpus is used

    names = (*SKIMAGE_PHOTOS, *TEXTURES)
    out = {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in names}
    out.update(debian.photographs(DEBIAN_SIDE))
    return out


def encoded(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def scanned(data: bytes) -> Image.Image:
    """The frame the scanner hashes: Warden's decoder, default limits."""
    return decode(data, DecodeLimits()).frames[0].image


# -- edits ---------------------------------------------------------------------


def _resize(f: float) -> Callable[[Image.Image, int], Image.Image]:
    def edit(im: Image.Image, i: int) -> Image.Image:
        size = (max(1, round(im.width * f)), max(1, round(im.height * f)))
        return im.resize(size, Image.Resampling.BILINEAR)

    return edit


def _crop(f: float) -> Callable[[Image.Image, int], Image.Image]:
    def edit(im: Image.Image, i: int) -> Image.Image:
        dx, dy = round(im.width * f), round(im.height * f)
        return im.crop((dx, dy, im.width - dx, im.height - dy))

    return edit


def _crop_one_side(im: Image.Image, i: int) -> Image.Image:
    """10 % off one side; the side turns with the photo's index."""
    dx, dy = round(im.width * 0.1), round(im.height * 0.1)
    boxes = [
        (dx, 0, im.width, im.height),
        (0, dy, im.width, im.height),
        (0, 0, im.width - dx, im.height),
        (0, 0, im.width, im.height - dy),
    ]
    return im.crop(boxes[i % 4])


def _border(f: float, colour: tuple[int, int, int]) -> Callable[[Image.Image, int], Image.Image]:
    def edit(im: Image.Image, i: int) -> Image.Image:
        return ImageOps.expand(im, (round(im.width * f), round(im.height * f)), fill=colour)

    return edit


def _rotate(deg: float) -> Callable[[Image.Image, int], Image.Image]:
    def edit(im: Image.Image, i: int) -> Image.Image:
        return im.rotate(deg, Image.Resampling.BICUBIC, expand=False)

    return edit


def _caption(im: Image.Image, i: int) -> Image.Image:
    """A meme-style white bar above the picture (18 % of its height) with black text."""
    bar = max(24, round(im.height * 0.18))
    out = Image.new("RGB", (im.width, im.height + bar), (255, 255, 255))
    out.paste(im, (0, bar))
    font = ImageFont.load_default(size=max(10, bar // 3))
    ImageDraw.Draw(out).text(
        (im.width // 20, bar // 4), "when you see it", fill=(0, 0, 0), font=font
    )
    return out


def _screenshot(im: Image.Image, i: int) -> Image.Image:
    """Scaled to 80 % onto a light app canvas the size of the original, a little above centre."""
    small = im.resize((round(im.width * 0.8), round(im.height * 0.8)), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", im.size, (242, 242, 245))
    canvas.paste(small, ((im.width - small.width) // 2, (im.height - small.height) // 3))
    return canvas


@dataclass(frozen=True)
class Edit:
    """An edit kind of issue 16 and the share of photos that must still match."""

    name: str
    apply: Callable[[Image.Image, int], Image.Image]
    goal: float  # for media Warden holds
    quality: int = 90


EDITS: tuple[Edit, ...] = (
    Edit("resize 50%", _resize(0.5), 0.99),
    Edit("resize 25%", _resize(0.25), 0.99),
    Edit("jpeg q30", lambda im, i: im, 0.99, quality=30),
    Edit("rotate 90", lambda im, i: im.rotate(90, expand=True), 0.95),
    Edit("mirror", lambda im, i: ImageOps.mirror(im), 0.95),
    Edit("crop 2% a side", _crop(0.02), 0.95),
    Edit("crop 5% a side", _crop(0.05), 0.95),
    Edit("crop 10% a side", _crop(0.10), 0.95),
    Edit("crop 10% one side", _crop_one_side, 0.95),
    Edit("white border 10%", _border(0.10, (255, 255, 255)), 0.95),
    Edit("black padding 20%", _border(0.20, (0, 0, 0)), 0.95),
    Edit("screenshot 80% on canvas", _screenshot, 0.95),
    Edit("caption bar", _caption, 0.90),
    Edit("rotate 3 deg", _rotate(3), 0.90),
    Edit("rotate 5 deg", _rotate(5), 0.90),
)


# -- matching --------------------------------------------------------------------

#: One side's hashes of one picture: (quality, the hash and its dihedral variants).
Hashes = Sequence[tuple[int, Sequence[str]]]


#: Set bits of every byte value: the Hamming distance of packed hashes by table lookup.
_BITS = np.array([bin(v).count("1") for v in range(256)], np.uint8)


def _packed(hashes: Hashes, *, turns: bool) -> np.ndarray:
    """The hashes above the quality floor as rows of 32 bytes: every orientation
    (`turns`, the query side) or the hash itself only (the bank side)."""
    rows = [
        bytes.fromhex(h)
        for quality, hexes in hashes
        if quality >= MIN_QUALITY
        for h in (hexes if turns else hexes[:1])
    ]
    if not rows:
        return np.empty((0, 32), np.uint8)
    return np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), 32)


def _nearest(query: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """For each bank row, the smallest distance from any query row (bits; 257 when the
    query has none)."""
    if not len(query) or not len(bank):
        return np.full(len(bank), 257, np.int64)
    distances = _BITS[query[:, None, :] ^ bank[None, :, :]].sum(axis=2, dtype=np.int64)
    return np.asarray(distances.min(axis=0))


@dataclass
class Outcome:
    """Rates per edit kind and the false pairs of one way of hashing."""

    matched: dict[str, list[str]] = field(default_factory=dict)
    missed: dict[str, list[str]] = field(default_factory=dict)
    false_pairs: list[tuple[str, str]] = field(default_factory=list)
    pairs: int = 0
    #: the smallest distance seen between two distinct photographs (bits; hashes only)
    closest: int = 256

    def rate(self, edit: str, among: Sequence[str] = PHOTOS) -> float:
        hit = len([n for n in self.matched.get(edit, ()) if n in among])
        miss = len([n for n in self.missed.get(edit, ()) if n in among])
        return hit / max(hit + miss, 1)


Hasher = Callable[[Image.Image], Hashes]


@cache
def edited_frames() -> dict[tuple[str, str], Image.Image]:
    """Every (photo, edit) as the scanner sees it; ("photo", "original") for the originals."""
    out: dict[tuple[str, str], Image.Image] = {}
    for i, (name, image) in enumerate(photos().items()):
        out[(name, "original")] = scanned(encoded(image))
        for edit in EDITS:
            out[(name, edit.name)] = scanned(encoded(edit.apply(image, i), edit.quality))
    return out


@cache
def hashes(hasher: Hasher, name: str, edit: str, *, turns: bool) -> np.ndarray:
    """One side's packed hashes of one (photo, edit), computed once per way of hashing."""
    return _packed(hasher(edited_frames()[(name, edit)]), turns=turns)


def evaluate(bank_side: Hasher, query_side: Hasher) -> Outcome:
    """Bank every original with `bank_side`, hash every edited copy with `query_side`:
    which copies find their original, and which pairs of distinct photos match."""
    names = list(photos())
    banked = [hashes(bank_side, name, "original", turns=False) for name in names]
    bank = np.concatenate(banked)
    owner = np.repeat(np.arange(len(names)), [len(b) for b in banked])
    outcome = Outcome()
    for edit in ("original", *(e.name for e in EDITS)):
        for i, name in enumerate(names):
            near = _nearest(hashes(query_side, name, edit, turns=True), bank)
            found = {int(o) for o in np.unique(owner[near <= THRESHOLD])}
            others = near[owner != i]
            outcome.closest = min(outcome.closest, int(others.min()) if len(others) else 256)
            if edit != "original":
                (outcome.matched if i in found else outcome.missed).setdefault(edit, []).append(
                    name
                )
            outcome.pairs += len(names) - 1
            outcome.false_pairs += [(f"{name} ({edit})", names[o]) for o in sorted(found - {i})]
    return outcome


def evaluate_keypoints(min_inliers: int = keypoints.MIN_INLIERS) -> tuple[Outcome, int]:
    """Every original held in a `KeypointIndex`; every edited copy asked of it. Also
    returns the most inliers seen between two distinct photographs (any candidate the
    index verified, matched or not), the number the threshold must stay well above."""
    frames = edited_frames()
    names = list(photos())
    index = keypoints.KeypointIndex(min_inliers=0)
    held = {name: keypoints.features(frames[(name, "original")]) for name in names}
    for i, name in enumerate(names):
        index.add_features(i, held[name])
    outcome = Outcome()
    worst = 0
    for edit in ("original", *(e.name for e in EDITS)):
        for i, name in enumerate(names):
            found = index.match(frames[(name, edit)])
            outcome.pairs += len(names) - 1
            for hit in found:
                if hit.entry != i:
                    worst = max(worst, hit.inliers)
                    if hit.inliers >= min_inliers:
                        outcome.false_pairs.append((f"{name} ({edit})", names[hit.entry]))
            if edit != "original":
                own = any(h.entry == i and h.inliers >= min_inliers for h in found)
                (outcome.matched if own else outcome.missed).setdefault(edit, []).append(name)
    return outcome, worst


def either(a: Outcome, b: Outcome) -> Outcome:
    """Two stages together: a copy is found when either finds it; every false pair counts."""
    out = Outcome(pairs=a.pairs, false_pairs=[*a.false_pairs, *b.false_pairs], closest=a.closest)
    for edit in {*a.matched, *a.missed}:
        hits = {*a.matched.get(edit, ()), *b.matched.get(edit, ())}
        out.matched[edit] = sorted(hits)
        out.missed[edit] = sorted({*a.missed.get(edit, ())} - hits)
    return out
