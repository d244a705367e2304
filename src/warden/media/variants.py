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
  meets the plain hash of an original that had no border. Loose trimming also
  eats a photograph's own dark sky or white wall along with padding of that
  colour (black padding: 86 % found on the corpus); *exact* trimming, found in
  the same pass, takes only the lines that are uniform to within JPEG noise,
  and its box is hashed too when it differs (`trimmed exact`: 100 %).
- **Small copies.** PDQ filters with a window of about 1/128 of the image side,
  so at 128 px it barely filters and the hash aliases: on the corpus a 50 % or
  25 % copy lands a median 10-11 bits (up to 56) from the original, while the
  scanner's draft decode is not the cause (a 4x larger camera-sized copy hashes
  within 2 bits). The *normalised* hash is the PDQ of the picture area-averaged
  to 64 x 64 (PDQ's own working size; every cell the exact mean of what it
  covers), so both sides are filtered alike whatever their resolution: median
  0-2 bits, at most 8, for the same copies. Every trimmed hash is normalised too.

Extra hashes are computed on the decoded scanning frame, read once (Pillow's
own pixel layout) for the border search and every normalised box, both
compiled (numba): about 0.6-0.8 ms of CPU on a 640 x 480 frame, against 1.6-2.2
ms when each box was cropped and reduced by Pillow and the border search was
numpy (`bench/hash_robustness.py --baseline`). They have no rotations or flips
of their own, and are never logged as the media's PDQ, never exported as such:
they are Warden's, rebuilt from the image. (Hashes banked before the exact
area mean replaced Pillow's reduction differ from today's: on the corpus a
median 4 bits, 1 % of them 18-26 bits or more; a `<bank>-warden` companion bank
made before should be rebuilt by flagging its pictures again.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
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
#: Per-channel difference from the edge colour within which a line counts as exact
#: padding, and the share of the line that must be within it (`borders`). Added padding
#: is uniform to within its JPEG noise; a photograph's dark sky or white wall is not.
TRIM_EXACT_TOLERANCE = 10
TRIM_EXACT_SHARE = 0.95
#: PDQ's working resolution: the normalised hash is taken at this size.
NORM_SIDE = 64
#: Share of the height a query also drops from its top, and from its bottom (caption bars).
QUERY_CUT = 0.15


@dataclass(frozen=True)
class ExtraHash:
    """One Warden-own hash of a frame: which kind, and its PDQ (no rotations or flips)."""

    kind: str  # "normalised", "trimmed", "trimmed exact", "cut top" or "cut bottom"
    pdq: hashing.PdqHash


Box = tuple[int, int, int, int]


@numba.njit(cache=True, nogil=True)
def _band(
    pixels: Any, box: Any, side: int, step: int, before: Any
) -> tuple[int, int, int, int, int]:
    """The band along one side of `box` (left, top, right, bottom) of (rows, cols, 3 or 4)
    pixels: (loose run, strict run, and the edge colour). A line (row, or column for
    the left and right sides) is read at every `step`-th pixel; the edge colour is the
    per-channel median of the edge line (truncated, as numpy's astype does). The loose
    run ends at the first line with less than TRIM_SHARE of its samples within
    TRIM_TOLERANCE of that colour, the strict run at the first with less than
    TRIM_EXACT_SHARE within TRIM_EXACT_TOLERANCE; neither looks past TRIM_MAX_SIDE of
    the side (and a bit). A round after the first (`before[0] >= 0`: the colour
    trimmed before) only takes a band of a clearly different colour."""
    left, top, right, bottom = box[0], box[1], box[2], box[3]
    horizontal = side == 1 or side == 3  # top and bottom: the lines are rows
    extent = bottom - top if horizontal else right - left
    across = right - left if horizontal else bottom - top
    n = (across + step - 1) // step
    reach = min(extent, int(TRIM_MAX_SIDE * extent) + 2)
    edge = np.empty((3, n), np.float64)
    for s in range(n):
        y, x = _at(left, top, right, bottom, side, 0, s * step)
        for c in range(3):
            edge[c, s] = pixels[y, x, c]
    c0, c1, c2 = int(np.median(edge[0])), int(np.median(edge[1])), int(np.median(edge[2]))
    if before[0] >= 0:
        near = max(abs(c0 - before[0]), abs(c1 - before[1]), abs(c2 - before[2]))
        if near <= 2 * TRIM_TOLERANCE:
            return 0, 0, before[0], before[1], before[2]
    loose, strict = reach, -1
    for line in range(reach):
        close = exact = 0
        for s in range(n):
            y, x = _at(left, top, right, bottom, side, line, s * step)
            d = max(
                abs(int(pixels[y, x, 0]) - c0),
                abs(int(pixels[y, x, 1]) - c1),
                abs(int(pixels[y, x, 2]) - c2),
            )
            close += d <= TRIM_TOLERANCE
            exact += d <= TRIM_EXACT_TOLERANCE
        if strict < 0 and exact / n < TRIM_EXACT_SHARE:
            strict = line
        if close / n < TRIM_SHARE:
            loose = line
            break
    return loose, (loose if strict < 0 else strict), c0, c1, c2


@numba.njit(cache=True, nogil=True, inline="always")
def _at(left: int, top: int, right: int, bottom: int, side: int, line: int, along: int) -> Any:
    """(row, column) of the pixel `along` a line `line` lines in from `side`."""
    if side == 0:
        return top + along, left + line
    if side == 1:
        return top + line, left + along
    if side == 2:
        return top + along, right - 1 - line
    return bottom - 1 - line, left + along


def _valid(run: int, extent: int) -> bool:
    """A run thick enough to be a border and short enough not to be the picture."""
    return max(2, round(TRIM_MIN_BAND * extent)) <= run <= TRIM_MAX_SIDE * extent


def _kept(box: Box, width: int, height: int) -> bool:
    return box[2] - box[0] >= TRIM_MIN_KEEP * width and box[3] - box[1] >= TRIM_MIN_KEEP * height


def borders(pixels: np.ndarray, rounds: int = TRIM_ROUNDS) -> tuple[list[Box], Box | None]:
    """The boxes left after each round of loose trimming (`trim_boxes`), and the box
    left by exact trimming when it is another one (`exact` below; None otherwise).

    Loose trimming cuts, from each side, the rows or columns that are mostly one
    colour: a caption bar with its text, a border with JPEG ringing. It also eats
    into a photograph's own dark sky or white wall when the border has its colour,
    and then the trimmed picture is no longer the original. Exact trimming cuts only
    the lines almost all of whose pixels are within TRIM_EXACT_TOLERANCE of the edge
    colour: added padding is that uniform, a photograph's own background is not.
    Both runs come from one pass over each side, so the exact box costs nothing
    more to find, and a hash more only when it differs.

    Row shares are read from every `step`-th pixel of the row (and column shares
    likewise), so a large frame costs no more than a 160 px one, while the band
    edges stay exact to the pixel (a leftover line of border moves a PDQ hash).
    `pixels`: (rows, cols, 3 or 4) uint8, C-contiguous (`rgb_pixels`)."""
    height, width = pixels.shape[:2]
    if height < 16 or width < 16:
        return [], None
    step = max(1, min(width, height) // TRIM_VIEW)
    box: Box = (0, 0, width, height)
    colours = np.full((4, 3), -1, np.int64)
    found: list[Box] = []
    exact: Box | None = None
    for round_ in range(rounds):
        left, top, right, bottom = box
        extents = (right - left, bottom - top) * 2
        loose, strict = [0, 0, 0, 0], [0, 0, 0, 0]
        for side in range(4):
            run, tight, *colour = _band(pixels, np.asarray(box), side, step, colours[side])
            if _valid(run, extents[side]):
                loose[side] = run
                colours[side] = colour
            if round_ == 0 and _valid(tight, extents[side]):
                strict[side] = tight
        if round_ == 0 and any(strict):
            cut = (strict[0], strict[1], width - strict[2], height - strict[3])
            exact = cut if _kept(cut, width, height) else None
        if not any(loose):
            break
        box = (left + loose[0], top + loose[1], right - loose[2], bottom - loose[3])
        if not _kept(box, width, height):
            break
        found.append(box)
    return found, (None if exact in found else exact)


def trim_boxes(image: Image.Image, rounds: int = TRIM_ROUNDS) -> list[Box]:
    """The boxes (left, top, right, bottom) left after each round of cutting uniform
    bands from the sides; empty when there is no band (or cutting it would leave a
    sliver)."""
    return borders(rgb_pixels(image), rounds)[0]


def trim_box(image: Image.Image) -> Box | None:
    """The box left after every round of trimming; None when nothing is trimmed."""
    boxes = trim_boxes(image)
    return boxes[-1] if boxes else None


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """The frame's pixels, read once for every extra hash: (rows, cols, 4) uint8, RGB
    and Pillow's padding byte, a plain copy of Pillow's own layout (as
    `hashing._pixels` takes them; packing to three bytes costs twice as much). The
    fourth channel is never read."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    return np.frombuffer(rgb.tobytes("raw", "RGBX"), np.uint8).reshape(height, width, 4)


@numba.njit(cache=True, nogil=True)
def _square(pixels: Any, left: int, top: int, right: int, bottom: int) -> Any:
    """The box (left, top, right, bottom) of (rows, cols, 3 or 4) uint8 pixels averaged
    down (or up) to NORM_SIDE x NORM_SIDE: each cell the exact area-weighted mean of
    the pixels it covers, fractions of pixels included, rounded to the nearest level.
    Rows first: each source row is added, weighted, to a float32 accumulator for its
    output row (one multiply-add per byte, vectorised; the same operations whatever
    the vector width, so every machine gets the same bits), then that accumulator is
    summed across into the output row's cells (`_cells_down`, `_cells_up`): the
    C-contiguous pixels of `rgb_pixels`."""
    n = NORM_SIDE
    width = right - left
    depth = pixels.shape[2]  # 3, or 4 with Pillow's padding byte (added up, never read)
    out = np.empty((n, n, 3), np.uint8)
    flat = np.empty(width * depth, np.float32)
    across = flat.reshape(width, depth)
    cell_h = (bottom - top) / n
    cell_w = width / n
    scale = 1.0 / (cell_h * cell_w)
    for i in range(n):
        a = top + i * cell_h
        b = a + cell_h
        flat[:] = 0.0
        y = int(a)
        while y < b and y < bottom:  # (a float b may pass bottom by a hair)
            w = np.float32(min(b, y + 1) - max(a, y))
            row = pixels[y].reshape(-1)[left * depth : right * depth]
            for k in range(width * depth):
                flat[k] += w * np.float32(row[k])
            y += 1
        if cell_w >= 1.0:
            _cells_down(across, cell_w, scale, out[i])
        else:
            _cells_up(across, cell_w, scale, out[i])
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _cells_down(across: Any, cell_w: float, scale: float, out: Any) -> None:
    """One output row from an accumulated (width, 3 or 4) row, cells a pixel wide or more:
    one pass along the row, a pixel split between two cells where a boundary cuts it."""
    n = out.shape[0]
    j = 0
    end = cell_w
    s0 = s1 = s2 = 0.0
    for x in range(across.shape[0]):
        v0, v1, v2 = across[x, 0], across[x, 1], across[x, 2]
        if x + 1 <= end or j == n - 1:
            s0 += v0
            s1 += v1
            s2 += v2
        else:
            f = end - x
            s0 += f * v0
            s1 += f * v1
            s2 += f * v2
            _emit(out[j], s0, s1, s2, scale)
            j += 1
            end = (j + 1) * cell_w
            g = 1.0 - f
            s0, s1, s2 = g * v0, g * v1, g * v2
    _emit(out[j], s0, s1, s2, scale)


@numba.njit(cache=True, nogil=True, inline="always")
def _cells_up(across: Any, cell_w: float, scale: float, out: Any) -> None:
    """One output row from an accumulated (width, 3 or 4) row, cells narrower than a pixel
    (a picture under 64 pixels wide): each cell the pixels' shares it covers."""
    width = across.shape[0]
    for j in range(out.shape[0]):
        a = j * cell_w
        b = a + cell_w
        s0 = s1 = s2 = 0.0
        x = int(a)
        while x < b and x < width:
            w = min(b, x + 1) - max(a, x)
            s0 += w * across[x, 0]
            s1 += w * across[x, 1]
            s2 += w * across[x, 2]
            x += 1
        _emit(out[j], s0, s1, s2, scale)


@numba.njit(cache=True, nogil=True, inline="always")
def _emit(cell: Any, s0: float, s1: float, s2: float, scale: float) -> None:
    """A cell's sums as its mean, rounded to the nearest level."""
    cell[0] = min(255, int(s0 * scale + 0.5))
    cell[1] = min(255, int(s1 * scale + 0.5))
    cell[2] = min(255, int(s2 * scale + 0.5))


def normalised(image: Image.Image, box: Box | None = None) -> Image.Image:
    """The picture (or the `box` of it) area-averaged to PDQ's 64 x 64 working size."""
    pixels = rgb_pixels(image)
    left, top, right, bottom = box or (0, 0, image.width, image.height)
    return Image.fromarray(_square(pixels, left, top, right, bottom))


def _hash(kind: str, pixels: np.ndarray, box: Box) -> ExtraHash:
    """One extra hash: the normalised picture in `box`, without rotations and flips: a
    rotated or mirrored copy is found by the plain hash's eight orientations, and each
    extra orientation would be one more index lookup per scan (at 10 M entries, the
    dearest part)."""
    return ExtraHash(kind, hashing.pdq_of_pixels(_square(pixels, *box)))


def _extra(pixels: np.ndarray) -> list[ExtraHash]:
    height, width = pixels.shape[:2]
    boxes, exact = borders(pixels)
    out = [_hash("normalised", pixels, (0, 0, width, height))]
    out += [_hash("trimmed", pixels, box) for box in boxes]
    if exact is not None:
        out.append(_hash("trimmed exact", pixels, exact))
    return out


def extra_hashes(image: Image.Image) -> list[ExtraHash]:
    """Warden's extra hashes of one frame, the same on the bank and the query side:
    the normalised hash of the whole picture and, when it has a border to trim,
    the normalised hash of what is left (`trimmed`), after one round of trimming
    and after all rounds when they differ (a bordered copy of a picture that has
    its own band needs one round more than the picture itself), and of what exact
    trimming leaves when that is another box (`trimmed exact`: black padding around
    a photograph with its own dark background)."""
    return _extra(rgb_pixels(image))


def query_hashes(image: Image.Image) -> list[ExtraHash]:
    """What a scan asks the banks beyond its plain hash: the extra hashes, and the
    normalised hashes of the picture without its top or bottom QUERY_CUT (a caption
    bar whose text or picture defeats trimming: on the corpus, caption bars went from
    73 % to 100 % found, with no false pair). Query side only: banking them would
    make every picture match its own crops' neighbours."""
    pixels = rgb_pixels(image)
    out = _extra(pixels)
    height, width = pixels.shape[:2]
    cut = round(height * QUERY_CUT)
    if cut >= 2:
        out.append(_hash("cut top", pixels, (0, cut, width, height)))
        out.append(_hash("cut bottom", pixels, (0, 0, width, height - cut)))
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the border search now, so that the first
    scan does not wait for it (`Scanner.start` calls it beside the PDQ hasher's),
    for read-only pixels (a PIL image's array) and writable ones."""
    for writeable in (False, True):
        pixels = np.zeros((32, 32, 4), np.uint8)
        pixels.flags.writeable = writeable
        _extra(pixels)


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
