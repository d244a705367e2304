"""PDQ compiled with numba: bit for bit ThreatExchange's reference, several times faster.

The reference is `pdqhash` (the Python binding of ThreatExchange's C++,
github.com/facebook/ThreatExchange pdq/cpp, cited below at commit baefb4ed):
grey in float64 numpy rounded to float32 (pdqhash bindings.pyx `compute`), a
two-pass "Jarosz" tent filter of running-sum box filters along rows then
columns (downscaling.cpp:270-476), decimation to 64 x 64 at pixel centres
(downscaling.cpp:136-153), a gradient quality metric (pdqhashing.cpp:314-341),
a 16 x 64 DCT matrix product (pdqhashing.cpp:38-52, 351-434), the eight
dihedral variants by sign flips and transposes of the 16 x 16 DCT output
(pdqhashing.cpp:437-530) and Torben's median per variant (torben.cpp; one bit
per coefficient above it, pdqhashing.cpp:535-546).

Why it is faster while every float operation is the same one, in the same
order, on the same float32 values (IEEE arithmetic gives the same bits whatever
the instruction; numba emits no fused multiply-adds without fastmath):

- each box filter pass runs *down* an array, one running sum per column, so the
  sums of a whole row of columns advance together in SIMD registers instead of
  one long chain of dependent adds; a row pass is a column pass over the
  transposed array, so the passes alternate with cache-blocked transposes;
- the second pass along each axis computes only what decimation reads (the
  running sums still see every pixel, in order; the divisions and stores are
  done for the 64 sampled columns alone);
- grey is computed in one pass with no float64 image, the bits are packed
  without Python loops, and the GIL is released throughout (`nogil`), so the
  service's threads hash while others classify.

`cache=True` keeps the compiled code beside this module (as media/pdq_kernel.py
does); `warm_up` compiles or loads it before the first request.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

#: Images with a side below this get the all-zero hash and quality 0 (pdqhashing.cpp:64).
MIN_HASHABLE_DIM = 5
_OUT = 64
#: Side of the blocks transposes copy: 8 keeps a block's lines within the cache's
#: ways even when a row is a power of two long (1024 px: 3x faster than 32).
_BLOCK = 8


def _dct_matrix() -> np.ndarray:
    """The 16 x 64 DCT matrix exactly as pdqhashing.cpp:38-52 builds it: a float scale
    times a double cosine, rounded to float (math.cos: the C library's cos)."""
    scale = np.float32(math.sqrt(2.0 / 64.0))
    matrix = np.empty((16, 64), np.float32)
    for i in range(16):
        for j in range(64):
            matrix[i, j] = np.float32(
                float(scale) * math.cos((math.pi / 2.0 / 64.0) * (i + 1) * (2 * j + 1))
            )
    return matrix


_DCT = _dct_matrix()
_DCT_T = np.ascontiguousarray(_DCT.T)


def _luma_tables() -> np.ndarray:
    """Each channel's float64 product with its grey weight, for every byte value: the
    very products pdqhash computes (IEEE multiplication is exact to the rounding, so
    a product looked up is the product computed), without the conversions and
    multiplications per pixel."""
    values = np.arange(256, dtype=np.float64)
    return np.stack([values * 0.299, values * 0.587, values * 0.114])


_LUMA = _luma_tables()


@numba.njit(cache=True, nogil=True)
def _luma_t(rgb: Any, weights: Any) -> Any:
    """Grey as pdqhash computes it (r*0.299 + g*0.587 + b*0.114 in float64, summed in
    that order, then float32), the products read from `weights` (`_LUMA`), written
    transposed: the first pass runs along the rows."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    out = np.empty((cols, rows), np.float32)
    for i0 in range(0, rows, _BLOCK):
        i1 = min(i0 + _BLOCK, rows)
        for j0 in range(0, cols, _BLOCK):
            j1 = min(j0 + _BLOCK, cols)
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[j, i] = np.float32(
                        weights[0, rgb[i, j, 0]]
                        + weights[1, rgb[i, j, 1]]
                        + weights[2, rgb[i, j, 2]]
                    )
    return out


@numba.njit(cache=True, nogil=True)
def _transpose(x: Any) -> Any:
    """x.T, copied in cache-sized blocks."""
    rows, cols = x.shape
    out = np.empty((cols, rows), x.dtype)
    for i0 in range(0, rows, _BLOCK):
        i1 = min(i0 + _BLOCK, rows)
        for j0 in range(0, cols, _BLOCK):
            j1 = min(j0 + _BLOCK, cols)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[j, i] = x[i, j]
    return out


@numba.njit(cache=True, nogil=True)
def _box_down(x: Any, window: int, keep: Any) -> Any:
    """box1DFloat (downscaling.cpp:394-448) down every column of `x` at once; returns
    the outputs of the rows listed in `keep` (ascending), in that order.

    Each column's running sum gets the very additions, subtractions and divisions
    of the reference, in its order; only rows not in `keep` skip their division."""
    rows, cols = x.shape
    out = np.empty((keep.shape[0], cols), np.float32)
    total = np.zeros(cols, np.float32)
    half = (window + 2) // 2
    phase1 = half - 1
    phase2 = window - half + 1
    phase3 = rows - window
    phase4 = half - 1
    li = 0
    ri = 0
    oi = 0
    current = 0
    k = 0
    for _ in range(phase1):
        for j in range(cols):
            total[j] = total[j] + x[ri, j]
        current += 1
        ri += 1
    for _ in range(phase2):
        for j in range(cols):
            total[j] = total[j] + x[ri, j]
        current += 1
        while k < keep.shape[0] and keep[k] == oi:  # small images sample a row twice
            size = np.float32(current)
            for j in range(cols):
                out[k, j] = total[j] / size
            k += 1
        ri += 1
        oi += 1
    for _ in range(phase3):
        for j in range(cols):
            total[j] = (total[j] + x[ri, j]) - x[li, j]
        while k < keep.shape[0] and keep[k] == oi:  # small images sample a row twice
            size = np.float32(current)
            for j in range(cols):
                out[k, j] = total[j] / size
            k += 1
        li += 1
        ri += 1
        oi += 1
    for _ in range(phase4):
        for j in range(cols):
            total[j] = total[j] - x[li, j]
        current -= 1
        while k < keep.shape[0] and keep[k] == oi:  # small images sample a row twice
            size = np.float32(current)
            for j in range(cols):
                out[k, j] = total[j] / size
            k += 1
        li += 1
        oi += 1
    return out


@numba.njit(cache=True, nogil=True)
def _centres(size: int) -> Any:
    """The rows decimateFloat reads (downscaling.cpp:146-150): pixel centres, in double."""
    out = np.empty(_OUT, np.int64)
    for i in range(_OUT):
        out[i] = int(((i + 0.5) * size) / _OUT)
    return out


@numba.njit(cache=True, nogil=True)
def _downsample(luma_t: Any) -> Any:
    """jaroszFilterFloat with two passes, then decimateFloat, to 64 x 64.

    Rows then columns, twice (downscaling.cpp:280-283). Each pass runs down a
    transposed copy; the last row pass keeps only the sampled columns and the
    last column pass only the sampled rows."""
    cols, rows = luma_t.shape
    along_rows = (cols + 2 * _OUT - 1) // (2 * _OUT)  # computeJaroszFilterWindowSize
    along_cols = (rows + 2 * _OUT - 1) // (2 * _OUT)
    every_col = np.arange(cols)
    every_row = np.arange(rows)
    a = _box_down(luma_t, along_rows, every_col)  # rows box 1, (cols, rows)
    b = _box_down(_transpose(a), along_cols, every_row)  # cols box 1, (rows, cols)
    c = _box_down(_transpose(b), along_rows, _centres(cols))  # rows box 2 at sampled cols
    # columns box 2 down the 64 sampled columns, read at the sampled rows
    d = _box_down(_transpose(c), along_cols, _centres(rows))
    return d


@numba.njit(cache=True, nogil=True)
def _quality(a: Any) -> int:
    """pdqImageDomainQualityMetric (pdqhashing.cpp:314-341), float for float."""
    hundred = np.float32(100.0)
    top = np.float32(255.0)
    total = 0
    for i in range(63):
        for j in range(64):
            d = int(((a[i, j] - a[i + 1, j]) * hundred) / top)
            total += abs(d)
    for i in range(64):
        for j in range(63):
            d = int(((a[i, j] - a[i, j + 1]) * hundred) / top)
            total += abs(d)
    quality = total // 90
    return min(quality, 100)


@numba.njit(cache=True, nogil=True)
def _dct(a: Any, d: Any, dt: Any) -> Any:
    """dct64To16 (pdqhashing.cpp:351-434): B = (D A) Dt, each sum in order of k."""
    t = np.zeros((16, 64), np.float32)
    for i in range(16):
        for k in range(64):
            w = d[i, k]
            for j in range(64):
                t[i, j] = t[i, j] + w * a[k, j]
    b = np.zeros((16, 16), np.float32)
    for i in range(16):
        for k in range(64):
            w = t[i, k]
            for j in range(16):
                b[i, j] = b[i, j] + w * dt[k, j]
    return b


@numba.njit(cache=True, nogil=True)
def _torben(m: Any) -> Any:
    """torben.cpp, line for line: the median the reference compares against."""
    n = m.shape[0]
    lo = m[0]
    hi = m[0]
    for i in range(1, n):
        if m[i] < lo:
            lo = m[i]
        if m[i] > hi:
            hi = m[i]
    half = (n + 1) // 2
    two = np.float32(2.0)
    while True:
        guess = (lo + hi) / two
        less = 0
        greater = 0
        equal = 0
        below = lo
        above = hi
        for i in range(n):
            if m[i] < guess:
                less += 1
                if m[i] > below:
                    below = m[i]
            elif m[i] > guess:
                greater += 1
                if m[i] < above:
                    above = m[i]
            else:
                equal += 1
        if less <= half and greater <= half:
            break
        elif less > greater:
            hi = below
        else:
            lo = above
    if less >= half:
        return below
    elif less + equal >= half:
        return guess
    return above


@numba.njit(cache=True, nogil=True)
def _pack(b: Any, out: Any) -> None:
    """The 32 bytes of one hash: bit 255 (the last coefficient) first, as
    pdqhash's hash_to_vector and ThreatExchange's hex strings order them."""
    flat = b.ravel()
    median = _torben(flat)
    for byte in range(32):
        value = 0
        for bit in range(8):
            value = (value << 1) | (1 if flat[255 - (byte * 8 + bit)] > median else 0)
        out[byte] = value


@numba.njit(cache=True, nogil=True)
def _variant(a: Any, which: int) -> Any:
    """dct16OriginalTo* (pdqhashing.cpp:452-530): the DCT of a rotated or flipped image."""
    if which == 0:
        return a.copy()
    b = np.empty((16, 16), np.float32)
    for i in range(16):
        for j in range(16):
            v = a[i, j]
            if which == 1:  # rotate 90
                b[j, i] = v if j & 1 else -v
            elif which == 2:  # rotate 180
                b[i, j] = -v if (i + j) & 1 else v
            elif which == 3:  # rotate 270
                b[j, i] = v if i & 1 else -v
            elif which == 4:  # flip x
                b[i, j] = v if i & 1 else -v
            elif which == 5:  # flip y
                b[i, j] = v if j & 1 else -v
            elif which == 6:  # flip plus 1
                b[j, i] = v
            else:  # flip minus 1
                b[j, i] = -v if (i + j) & 1 else v
    return b


@numba.njit(cache=True, nogil=True)
def _hash(rgb: Any, variants: int, shortcut: bool, d: Any, dt: Any, weights: Any) -> Any:
    """`variants` packed hashes (1 or 8) and the quality of an (rows, cols, 3) uint8
    image (or (rows, cols, 4): the fourth channel is not read).

    `shortcut`: a 64 x 64 image is used as is, unfiltered, as pdqFloat256FromFloatLuma
    does (pdqhashing.cpp:163-171) and the dihedral entry point does not."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    out = np.zeros((variants, 32), np.uint8)
    if rows < MIN_HASHABLE_DIM or cols < MIN_HASHABLE_DIM:
        return out, 0
    luma_t = _luma_t(rgb, weights)
    unfiltered = shortcut and rows == _OUT and cols == _OUT
    small = luma_t.T.copy() if unfiltered else _downsample(luma_t)
    quality = _quality(small)
    coefficients = _dct(small, d, dt)
    for v in range(variants):
        _pack(_variant(coefficients, v), out[v])
    return out, quality


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """A C-ordered (rows, cols, 3 or 4) uint8 array, as the kernel takes it.

    A fourth channel is read past, never used: Pillow keeps RGB as RGBX, and its
    RGBX bytes come out as a plain copy (`Image.tobytes("raw", "RGBX")`) where
    packing to three bytes a pixel costs 2.4x more (a 0.5 MP frame: 75 against
    180 us), so the decoder's frames travel and are hashed as RGBX."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(
            f"PDQ needs (rows, cols, 3) uint8 pixels, not {pixels.dtype} {pixels.shape}"
        )
    return np.ascontiguousarray(pixels)


def compute(pixels: np.ndarray) -> tuple[bytes, int]:
    """The PDQ hash (32 bytes, ThreatExchange's bit order) and quality, as pdqhash.compute."""
    packed, quality = _hash(_rgb(pixels), 1, True, _DCT, _DCT_T, _LUMA)
    return packed[0].tobytes(), int(quality)


def compute_dihedral(pixels: np.ndarray) -> tuple[list[bytes], int]:
    """The eight dihedral hashes (order of pdqhash.compute_dihedral) and the quality."""
    packed, quality = _hash(_rgb(pixels), 8, False, _DCT, _DCT_T, _LUMA)
    return [row.tobytes() for row in packed], int(quality)


def warm_up() -> None:
    """Compile (or load from the cache) every kernel now, for writable pixels (the
    decoder's shared memory) and read-only ones (a PIL image's array): numba keeps
    one machine code per kind, and the first request should wait for neither."""
    for side in (8, 64):
        pixels = np.zeros((side, side, 3), np.uint8)
        for writeable in (True, False):
            pixels.flags.writeable = writeable
            compute(pixels)
            compute_dihedral(pixels)
