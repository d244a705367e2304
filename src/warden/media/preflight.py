"""The limits on one decode, and the checks that need only the bytes.

Byte scans at C speed (`bytes.find`, stopping early), no decoder involved: the
service runs these on its event loop before a file may occupy a decoder process,
and the decoder runs them again before it allocates anything (size, format, what
the header promises to allocate or cost).
"""

from __future__ import annotations

from dataclasses import dataclass

from warden.errors import (
    BadDimensions,
    CorruptMedia,
    EmptyMedia,
    MediaTooLarge,
    TooManyPixels,
    TooManyScans,
)
from warden.media.formats import Format, sniff
from warden.media.headers import header_work, jpeg_size, webp_canvas


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on one decode (see `MediaSettings` for their meaning and defaults)."""

    max_bytes: int = 40 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_side: int = 30_000
    max_frames: int = 2_000
    sample_frames: int = 8
    timeout_s: float = 5.0
    scan_side: int = 320
    max_scans: int = 100
    max_scan_pixels: int = 2_000_000_000
    max_decoded_pixels: int = 1_000_000_000


def preflight(data: bytes, limits: DecodeLimits) -> Format:
    """The checks that need only the bytes: size, format, and what the header
    promises to allocate or cost. Pure Python over bytes, no decoder involved,
    so the service runs it before a file may occupy a decoder process."""
    if not data:
        raise EmptyMedia("the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    fmt = sniff(data)
    check_structure(data, fmt, limits)
    return fmt


def preflight_work(data: bytes, limits: DecodeLimits) -> tuple[Format, int | None]:
    """`preflight`, and `headers.header_work` of the file, which shares its JPEG scan count."""
    if not data:
        raise EmptyMedia("the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    fmt = sniff(data)
    scans = check_structure(data, fmt, limits)
    return fmt, header_work(data, fmt.name, scans=scans)


def check_structure(data: bytes, fmt: Format, limits: DecodeLimits) -> int | None:
    """Refuse from the bytes what the decoder would pay for before any check of ours.

    A progressive JPEG's scans are each a pass over the whole image (a 10000 x
    10000 grayscale file with its last scan repeated costs ~40 ms per copy, for
    141 bytes each); `FF DA` never occurs inside entropy-coded data (an `FF`
    there is stuffed with `00`), so counting it over the file bounds the scans
    of every frame, MPO included. Scans times pixels bounds the work itself
    (`max_scan_pixels`: 20 scans of 100 MP, under a second), so a file within
    the scan count cannot hold a decoder for the whole deadline either.
    libwebp allocates the whole canvas while Pillow opens a WebP (a 34-byte
    file can ask for 2.7 GB), so its header size is checked here.
    Returns a JPEG's scan count (None for other formats).
    """
    if fmt.name == "jpeg":
        scans = count_up_to(data, b"\xff\xda", limits.max_scans + 1)
        if scans > limits.max_scans:  # counting stopped there
            raise TooManyScans(
                f"jpeg file has more than {limits.max_scans:,} scans; the limit is "
                f"{limits.max_scans:,} (each progressive scan is another pass over the whole image)"
            )
        size = jpeg_size(data)
        if size is not None and scans * size[0] * size[1] > limits.max_scan_pixels:
            raise TooManyScans(
                f"jpeg file has {scans:,} scans of {size[0]}x{size[1]} pixels = "
                f"{scans * size[0] * size[1]:,} pixel passes; the limit is "
                f"{limits.max_scan_pixels:,}"
            )
        return scans
    if fmt.name == "webp":
        size = webp_canvas(data)
        if size is None:
            raise CorruptMedia("webp file has no readable VP8, VP8L or VP8X header")
        check_size(fmt, size[0], size[1], limits)
    return None


def count_up_to(data: bytes, needle: bytes, most: int) -> int:
    """Occurrences of `needle` in `data`, counting no further than `most`.

    `bytes.find` runs at C speed; stopping at `most` means a bomb of 5,000 scans
    (1 MB of `FF DA`-dense bytes, 2.3 ms for `bytes.count`) costs the event loop
    a few hundred microseconds, however long it goes on, while an ordinary file's
    count is exact."""
    found, at = 0, data.find(needle)
    while at >= 0 and found < most:
        found += 1
        at = data.find(needle, at + len(needle))
    return found


def check_size(
    fmt: Format, width: int, height: int, limits: DecodeLimits, *, what: str = "header"
) -> None:
    if width <= 0 or height <= 0:
        raise BadDimensions(f"{fmt.name} {what} declares {width}x{height} pixels")
    if width > limits.max_side or height > limits.max_side:
        raise BadDimensions(
            f"{fmt.name} {what} declares {width}x{height} pixels; no side may exceed {limits.max_side:,}"
        )
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"{fmt.name} {what} declares {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limits.max_pixels:,}"
        )
