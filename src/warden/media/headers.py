"""What a file's header bytes promise, read before any decoder sees them.

Sizes and costs the decoder would only learn while allocating: the frame size
of a JPEG and its number of scans (each a pass over every pixel), a WebP's
canvas (libwebp allocates it while Pillow merely opens the file), a PNG, GIF
or BMP header, the largest image of a HEIF/AVIF file (its `ispe` property),
JPEG XL's size header. Pure Python over bytes, bounded in the work it does, so
the service reads them in its own process before a file takes a decoder.
"""

from __future__ import annotations

from warden.errors import MediaError
from warden.media import jxl

#: Start-of-frame markers (SOF0-SOF15 less DHT, JPG and DAC), which carry the size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes, max_segments: int = 512) -> tuple[int, int] | None:
    """Width and height from a JPEG's frame header, walking the segments before it.

    None when there is none within `max_segments` segments (the decoder then
    refuses the file, or the deadline bounds it): the walk is Python, and a file
    of millions of empty segments must not make it slow.
    """
    i = 2
    for _ in range(max_segments):
        if i + 4 > len(data) or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF and i + 9 <= len(data):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            return int.from_bytes(data[i + 7 : i + 9], "big"), height
        if marker == 0xDA:  # a scan before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def header_work(data: bytes, fmt: str, *, scans: int | None = None) -> int | None:
    """Roughly how many pixels decoding will touch, from the header alone; None when
    the format's header is not read here (TIFF). A JPEG's scans each pass over every
    pixel; HEIF/AVIF count their largest image (`ispe` property). Lets the decoder
    pool keep large files from taking every worker. `scans`: a JPEG's count of
    `FF DA` when the caller has it already (counting reads the whole file)."""
    size: tuple[int, int] | None = None
    passes = 1
    if fmt == "jpeg":
        count = data.count(b"\xff\xda") if scans is None else scans
        size, passes = jpeg_size(data), max(count, 1)
    elif fmt == "webp":
        size = webp_canvas(data)
    elif fmt == "png" and len(data) >= 24:
        size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    elif fmt in ("gif", "bmp") and len(data) >= 26:
        at, width = (6, 2) if fmt == "gif" else (18, 4)
        size = (
            int.from_bytes(data[at : at + width], "little"),
            abs(int.from_bytes(data[at + width : at + 2 * width], "little", signed=True)),
        )
    elif fmt in ("avif", "heic"):
        sizes = [
            int.from_bytes(data[i + 8 : i + 12], "big")
            * int.from_bytes(data[i + 12 : i + 16], "big")
            for i in _find_all(data[:65_536], b"ispe")
        ]
        return max(sizes) if sizes else None
    elif fmt == "jxl":
        try:
            header = jxl.read_header(data)
        except MediaError:
            return None
        size = header.width, header.height
    return None if size is None else size[0] * size[1] * passes


def _find_all(data: bytes, needle: bytes, limit: int = 64) -> list[int]:
    found: list[int] = []
    at = data.find(needle)
    while at >= 0 and len(found) < limit:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def webp_canvas(data: bytes) -> tuple[int, int] | None:
    """The canvas size the first WebP chunk declares (VP8X, VP8 or VP8L), unread otherwise.

    Layouts from libwebp's container spec: VP8X carries 24-bit width-1 and
    height-1 at offsets 24 and 27; a VP8 key frame has the start code 9D 01 2A
    then 14-bit sizes; VP8L has the signature 2F then two 14-bit sizes minus one.
    """
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None
