"""Warden's own extra PDQ hashes: the same picture behind borders, canvases and resizes.

Plain PDQ (`hashing.pdq`) is what ThreatExchange, NCMEC-style lists and other
instances compute and exchange; it is always stored and always queried, bit
for bit as before. It is fragile in two everyday ways, and the hashes here
cover them (`bench/hash_robustness.py` measures each, on the robustness corpus):

- **Borders, padding, screenshot canvases, caption bars.** A uniform band
  added around a picture moves every PDQ bit. `trim_boxes` cuts, from each
  side, the rows or columns that are mostly one colour, the colour of that
  edge; a caption bar counts as such a band when most of each of its rows is
  the bar's colour (the text is sparse). A second round takes a band of another
  colour that the first uncovered (a photo's own sky under a caption bar). The
  hash of what is left is the *trimmed* hash. Done on both sides (when banking
  media Warden holds, and on every scanned frame), a bordered copy and its
  original meet in the middle; against hash-only lists the trimmed query still
  meets the plain hash of an original that had no border.
- **Small copies.** PDQ filters with a window of about 1/128 of the image side,
  so at 128 px it barely filters and the hash aliases: on the corpus a 50 % or
  25 % copy lands a median 10-11 bits (up to 56) from the original, while the
  scanner's draft decode is not the cause (a 4x larger camera-sized copy hashes
  within 2 bits). The *normalised* hash is the PDQ of the picture box-averaged
  to 64 x 64 (PDQ's own working size), so both sides are filtered alike
  whatever their resolution: median 2-4 bits, at most 12, for the same copies.
  Every trimmed hash is taken normalised too.

Extra hashes are computed on the decoded scanning frame (about 2 ms of CPU on a
640 x 480 frame, most of it Pillow's box reduction and the border search; twice
the plain hash with its eight orientations since that one is compiled), with
no rotations or flips of their own, and are never logged as the media's PDQ,
never exported as such: they are Warden's, rebuilt from the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from warden.domain.verdict import FrameHash
from warden.media import hashing
from warden.media.decode import Frame

#: Per-channel difference from the edge colour still counted as that colour
#: (JPEG ringing along a border's edge and the noise of a scanned page stay below it).
TRIM_TOLERANCE = 28
#: Share of a row (column) in the edge colour for it to be trimmed as border.
#: 0.6 takes caption bars (their text covers well under 40 % of a row) and leaves
#: photographs' own edges, which change colour along a row.
TRIM_SHARE = 0.6
#: Rows (columns) of the edge colour needed before a side is trimmed at all:
#: a one- or two-pixel line is the picture's own edge, not a border.
TRIM_MIN_BAND = 0.015
#: Share of each side that must remain after trimming; below it nothing is trimmed
#: (what would be left is a sliver, and the plain hash says as much).
TRIM_MIN_KEEP = 0.35
#: Column (row) stride when measuring a row's (column's) share: the share of a 160-pixel
#: sample tells a band from a picture, and the band's edge stays exact to the pixel.
TRIM_VIEW = 160
#: Rounds of trimming (a caption bar above a sky: the bar, then the sky).
TRIM_ROUNDS = 2
#: Most of one side's extent a single side may take; a longer band (a dark night sky
#: running across a dark photograph) is the picture itself, and that side stays.
TRIM_MAX_SIDE = 0.45
#: Rows read at a time when following a band inwards (most sides stop in the first chunk).
_CHUNK = 16
#: PDQ's working resolution: the normalised hash is taken at this size.
NORM_SIDE = 64
#: Share of the height a query also drops from its top, and from its bottom (caption bars).
QUERY_CUT = 0.15


@dataclass(frozen=True)
class ExtraHash:
    """One Warden-own hash of a frame: which kind, and its PDQ (no rotations or flips)."""

    kind: str  # "normalised", "trimmed", "cut top" or "cut bottom"
    pdq: hashing.PdqHash


def _side(
    pixels: np.ndarray, extent: int, before: np.ndarray | None
) -> tuple[int, np.ndarray | None]:
    """The band at row 0 of `pixels` (rows, cols, 3; `extent` rows on that side in all)
    and its colour: the run of rows in which at least TRIM_SHARE of the pixels are
    within TRIM_TOLERANCE of the edge row's median colour. 0 when the run is too thin
    or too long to be a border. After a first band (`before`, its colour) only a band
    of a clearly different colour counts (a caption bar above a sky): peeling a
    colour gradient row by row would eat the picture."""
    colour = np.median(pixels[0], axis=0).astype(np.int16)
    if before is not None and np.abs(colour - before).max() <= 2 * TRIM_TOLERANCE:
        return 0, before
    run = 0
    while run < len(pixels):
        chunk = pixels[run : run + _CHUNK].astype(np.int16)
        close = np.abs(chunk[..., 0] - colour[0]) <= TRIM_TOLERANCE
        close &= np.abs(chunk[..., 1] - colour[1]) <= TRIM_TOLERANCE
        close &= np.abs(chunk[..., 2] - colour[2]) <= TRIM_TOLERANCE
        low = np.flatnonzero(close.mean(axis=1) < TRIM_SHARE)
        if low.size:
            run += int(low[0])
            break
        run += len(chunk)
    if run < max(2, round(TRIM_MIN_BAND * extent)) or run > TRIM_MAX_SIDE * extent:
        return 0, before
    return run, colour


def trim_boxes(image: Image.Image, rounds: int = TRIM_ROUNDS) -> list[tuple[int, int, int, int]]:
    """The boxes (left, top, right, bottom) left after each round of cutting uniform
    bands from the sides; empty when there is no band (or cutting it would leave a
    sliver).

    Row shares are read from every `step`-th pixel of the row (and column shares
    likewise), so a large frame costs no more than a 160 px one, while the band
    edges stay exact to the pixel (a leftover line of border moves a PDQ hash)."""
    width, height = image.size
    if height < 16 or width < 16:
        return []
    step = max(1, min(width, height) // TRIM_VIEW)
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    box = (0, 0, width, height)
    colours: list[np.ndarray | None] = [None, None, None, None]
    found: list[tuple[int, int, int, int]] = []
    for _ in range(rounds):
        left, top, right, bottom = box
        rows = pixels[top:bottom, left:right:step]
        cols = pixels[top:bottom:step, left:right].transpose(1, 0, 2)
        # a band longer than TRIM_MAX_SIDE is not trimmed: look no further than that
        reach_r, reach_c = int(TRIM_MAX_SIDE * len(rows)) + 2, int(TRIM_MAX_SIDE * len(cols)) + 2
        views = (cols[:reach_c], rows[:reach_r], cols[::-1][:reach_c], rows[::-1][:reach_r])
        extents = (right - left, bottom - top) * 2
        bands = []
        for side, view in enumerate(views):
            run, colours[side] = _side(view, extents[side], colours[side])
            bands.append(run)
        if not any(bands):
            break
        box = (left + bands[0], top + bands[1], right - bands[2], bottom - bands[3])
        if box[2] - box[0] < TRIM_MIN_KEEP * width or box[3] - box[1] < TRIM_MIN_KEEP * height:
            break
        found.append(box)
    return found


def trim_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The box left after every round of trimming; None when nothing is trimmed."""
    boxes = trim_boxes(image)
    return boxes[-1] if boxes else None


def trim_borders(image: Image.Image) -> Image.Image | None:
    """The picture without its uniform borders, canvas or caption bar; None if it has none."""
    box = trim_box(image)
    return None if box is None else image.crop(box)


def normalised(image: Image.Image) -> Image.Image:
    """The picture box-averaged to PDQ's 64 x 64 working size."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap: an integer box reduction first, then the exact box resize (a third
    # of the time; the same on the bank and the query side)
    return rgb.resize((NORM_SIDE, NORM_SIDE), Image.Resampling.BOX, reducing_gap=2.0)


def _hash(kind: str, image: Image.Image) -> ExtraHash:
    """One extra hash, without rotations and flips: a rotated or mirrored copy is
    found by the plain hash's eight orientations, and each extra orientation would
    be one more index lookup per scan (at 10 M entries, the dearest part)."""
    return ExtraHash(kind, hashing.pdq_of_pixels(np.asarray(image, dtype=np.uint8)))


def extra_hashes(image: Image.Image) -> list[ExtraHash]:
    """Warden's extra hashes of one frame, the same on the bank and the query side:
    the normalised hash of the whole picture and, when it has a border to trim,
    the normalised hash of what is left (`trimmed`), after one round of trimming
    and after all rounds when they differ (a bordered copy of a picture that has
    its own band needs one round more than the picture itself)."""
    out = [_hash("normalised", normalised(image))]
    for box in trim_boxes(image):
        out.append(_hash("trimmed", normalised(image.crop(box))))
    return out


def query_hashes(image: Image.Image) -> list[ExtraHash]:
    """What a scan asks the banks beyond its plain hash: the extra hashes, and the
    normalised hashes of the picture without its top or bottom QUERY_CUT (a caption
    bar whose text or picture defeats trimming: on the corpus, caption bars went from
    73 % to 100 % found, with no false pair). Query side only: banking them would
    make every picture match its own crops' neighbours."""
    out = extra_hashes(image)
    width, height = image.size
    cut = round(height * QUERY_CUT)
    if cut >= 2:
        for kind, box in (
            ("cut top", (0, cut, width, height)),
            ("cut bottom", (0, 0, width, height - cut)),
        ):
            out.append(_hash(kind, normalised(image.crop(box))))
    return out


def robust_frames(frames: Sequence[Frame], *, query: bool = True) -> tuple[FrameHash, ...]:
    """Warden's extra hashes of the first frame, shaped as frames for the bank matcher
    (which then matches them like any frame: quality floor, threshold): the query's
    (`query_hashes`) for a scan, the bank's (`extra_hashes`) for media being banked.
    Only the first frame: the cost stays one frame's for animations too."""
    if not frames:
        return ()
    first = frames[0]
    found = query_hashes(first.image) if query else extra_hashes(first.image)
    return tuple(FrameHash(first.index, extra.pdq.hex, extra.pdq.quality) for extra in found)
