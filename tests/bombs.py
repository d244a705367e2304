"""Hostile files made in the tests: small inputs that cost a decoder seconds or gigabytes.

Each builder writes the bytes by hand (markers, chunks, IFDs) from the format's
layout, so the tests never depend on a file from outside; the comment says what
each one costs a decoder without limits (issue 12's measurements).
"""

from __future__ import annotations

import functools
import io
import struct

from PIL import Image


@functools.cache
def _progressive_base(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, "JPEG", progressive=True, quality=90)
    return buf.getvalue()


def progressive_scan_bomb(repeats: int, side: int = 10_000) -> bytes:
    """A grayscale progressive JPEG with its last scan repeated `repeats` times.

    Each copy is ~140 bytes and one more pass over all side x side
    coefficients (~40 ms at 10000 x 10000): 629 KB decoded for 19.6 s.
    """
    base = _progressive_base(side)
    last = base.rfind(b"\xff\xda")
    scan = base[last:-2]  # from the last SOS to just before EOI
    return base[:-2] + scan * repeats + b"\xff\xd9"


def _gif_frame(width: int, height: int) -> bytes:
    # image descriptor, no local palette; LZW min size 2, one sub-block: clear + end
    return b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"


def gif_with_frames(screen: tuple[int, int], frames: list[tuple[int, int]]) -> bytes:
    """A GIF with a 2-colour global palette and the given frame sizes."""
    head = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    return head + b"".join(_gif_frame(w, h) for w, h in frames) + b"\x3b"


def gif_canvas_growth() -> bytes:
    """A 1x1 logical screen whose second frame is 20000 x 20000: Pillow grows the
    canvas to the frame (400 MP, 5 GB peak through the model pipeline)."""
    return gif_with_frames((1, 1), [(1, 1), (20_000, 20_000)])


def gif_tiny_huge() -> bytes:
    """50 bytes declaring a 65535 x 65535 second frame (4.3 GB when loaded)."""
    return gif_with_frames((1, 1), [(1, 1), (65_535, 65_535)])


def webp_tiny_huge(kind: str = "VP8X") -> bytes:
    """A WebP header alone declaring a 16384 x 16384 canvas (VP8X) or 16383 x 16383
    (VP8L): libwebp allocates the canvas while Pillow merely opens it (2.7 GB)."""
    if kind == "VP8X":
        body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
        body += (16_383).to_bytes(3, "little") + (16_383).to_bytes(3, "little")
    else:
        bits = (16_382) | (16_382 << 14)
        body = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + struct.pack("<I", bits) + b"\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _ifd(entries: list[tuple[int, int, int]], next_ifd: int) -> bytes:
    """A little-endian IFD of (tag, type, value) entries, values inline (SHORT=3, LONG=4)."""
    out = struct.pack("<H", len(entries))
    for tag, kind, value in sorted(entries):
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return out + struct.pack("<I", next_ifd)


def tiff_pages(pages: list[tuple[int, int]], *, tile: int | None = None) -> bytes:
    """A grayscale, uncompressed TIFF with one IFD per (width, height) page.

    Every page's pixel data is 256 zero bytes (enough for a 16 x 16 page; a
    larger page is refused before it is read). With `tile`, the first page is
    tiled with that tile width and height (TIFF tags 322-325).
    """
    data = b"\x00" * 256
    out = bytearray(b"II*\x00" + struct.pack("<I", 8 + len(data)) + data)
    for i, (width, height) in enumerate(pages):
        entries = [
            (256, 4, width),
            (257, 4, height),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (277, 3, 1),
        ]
        if tile is not None and i == 0:
            entries += [(322, 4, tile), (323, 4, tile), (324, 4, 8), (325, 4, len(data))]
        else:
            entries += [(273, 4, 8), (278, 4, height), (279, 4, len(data))]
        size = 2 + 12 * len(entries) + 4
        last = i == len(pages) - 1
        out += _ifd(entries, 0 if last else len(out) + size)
    return bytes(out)


def corrupt(data: bytes, start_fraction: float = 0.5, length: int = 64) -> bytes:
    """`data` with `length` bytes in the middle (the coded image) overwritten."""
    start = int(len(data) * start_fraction)
    return (
        data[:start]
        + bytes((b ^ 0x5A) for b in data[start : start + length])
        + data[start + length :]
    )
