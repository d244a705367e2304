"""JPEG XL headers: size and animation flag, read before any pixel is decoded.

pict-rs stores JPEG XL as uploaded unless `[media.image] format` prescribes
another format (robinst/pict-rs 31049d3 = v0.5.16 src/formats/image.rs:40-55),
so the validation hook receives `image/jxl`. The Pillow plugin that decodes it
(pillow-jxl-plugin) decodes the whole first frame inside `Image.open`, before
Warden could read the size from the image object, and shows only that first
frame. So the codestream header is read here first: the limits apply to the
size it declares, and an animation, whose later frames the plugin would never
show, is refused rather than half-scanned.

The bit layout follows libjxl (SizeHeader::VisitFields in lib/jxl/headers.cc,
ImageMetadata::VisitFields in lib/jxl/image_metadata.cc; ISO/IEC 18181-1): bits
are read least-significant first; the codestream starts FF 0A; a container
starts with the 12-byte `JXL ` signature box and carries the codestream in a
`jxlc` box or in `jxlp` parts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from warden.errors import CorruptMedia, TruncatedMedia

CODESTREAM = b"\xff\x0a"
CONTAINER = b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a"

#: the aspect ratios a SizeHeader may name instead of a width (headers.cc)
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


@dataclass(frozen=True)
class JxlHeader:
    width: int
    height: int
    animated: bool


def is_jxl(head: bytes) -> bool:
    return head.startswith(CODESTREAM) or head.startswith(CONTAINER)


class _Bits:
    """A little-endian bit reader; running off the end means a truncated file."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def read(self, count: int) -> int:
        value = 0
        for shift in range(count):
            index = self._pos >> 3
            if index >= len(self._data):
                raise TruncatedMedia("jxl header is truncated")
            value |= ((self._data[index] >> (self._pos & 7)) & 1) << shift
            self._pos += 1
        return value

    def u32(self, *choices: tuple[int, int]) -> int:
        """JPEG XL's U32: a 2-bit selector, then `bits` bits plus `offset`."""
        bits, offset = choices[self.read(2)]
        return self.read(bits) + offset


_SIZE_U32 = ((9, 1), (13, 1), (18, 1), (30, 1))
_PREVIEW_DIV8_U32 = ((0, 16), (0, 32), (5, 1), (9, 33))
_PREVIEW_U32 = ((6, 1), (8, 65), (10, 321), (12, 1345))


def _size(bits: _Bits) -> tuple[int, int]:
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.u32(*_SIZE_U32)
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        return height * num // den, height
    width = (bits.read(5) + 1) * 8 if small else bits.u32(*_SIZE_U32)
    return width, height


def _skip_preview(bits: _Bits) -> None:
    div8 = bits.read(1)
    choices = _PREVIEW_DIV8_U32 if div8 else _PREVIEW_U32
    bits.u32(*choices)
    if bits.read(3) == 0:
        bits.u32(*choices)


def codestream(data: bytes) -> bytes:
    """The start of the codestream, from a bare codestream or a container."""
    if data.startswith(CODESTREAM):
        return data
    if not data.startswith(CONTAINER):
        raise CorruptMedia("not a jxl file")
    pos, parts = len(CONTAINER), b""
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        start = pos + 8
        if size == 1:  # a 64-bit size follows
            if start + 8 > len(data):
                break
            size = struct.unpack(">Q", data[start : start + 8])[0]
            start += 8
        end = len(data) if size == 0 else pos + size
        if end < start:
            raise CorruptMedia("jxl container has a box shorter than its header")
        if kind == b"jxlc":
            return data[start:end]
        if kind == b"jxlp":  # 4-byte part index, then codestream bytes
            parts += data[start + 4 : end]
            if len(parts) >= 64:
                return parts
        pos = end
    if parts:
        return parts
    raise TruncatedMedia("jxl container holds no codestream")


def read_header(data: bytes) -> JxlHeader:
    """Size and animation flag of a JPEG XL file, without decoding it."""
    stream = codestream(data)
    if not stream.startswith(CODESTREAM):
        raise CorruptMedia("jxl codestream does not start with FF 0A")
    bits = _Bits(stream[2:66])
    width, height = _size(bits)
    animated = False
    all_default = bits.read(1)  # ImageMetadata
    if not all_default and bits.read(1):  # extra_fields
        bits.read(3)  # orientation
        if bits.read(1):  # have_intrinsic_size
            _size(bits)
        if bits.read(1):  # have_preview
            _skip_preview(bits)
        animated = bool(bits.read(1))  # have_animation
    return JxlHeader(width, height, animated)
