"""Polyglot detection: refuse images that are also a web page, a ZIP or a PDF.

A browser that sniffs content, an archive tool or a PDF reader will open such a
file as its other self, so it is refused even when its pixels are harmless.

Markup is looked for where it survives as text: in the header and metadata
(JPEG APPn/COM segments, so EXIF, XMP and ICC, with an EXIF thumbnail walked as
the JPEG it is; every PNG chunk but IDAT/fdAT,
with zTXt and compressed iTXt inflated; GIF colour tables and comment,
application and plain-text extensions; WebP EXIF/XMP/unknown chunks; the BMP
header) and in whatever follows the image's end (after JPEG EOI, PNG IEND, the
GIF trailer, the RIFF size of a WebP, the file size of a BMP). Formats not
walked here (TIFF, AVIF, HEIC, JPEG XL), and whatever lies past the point where
a walk found the structure broken, are searched whole: a malformed file fails
closed rather than hiding a payload.

Entropy-coded pixel data (JPEG scans, PNG IDAT, GIF LZW blocks, WebP
bitstreams, BMP pixels) is where the old whole-file search went wrong: `<svg`
(four bytes, three of them case-free letters: about 1.4e-9 per byte) turns up
there by chance in about 0.14 % of 1 MB JPEGs. Only tags too long to occur by
chance are looked for there (`ACTIVE`: `<script`, `<iframe`, `<object`,
`<embed`, `<?php `, an event handler on an `<svg`, `<img`, ... tag: together
about 2.6e-13 per byte, so one false refusal in ~100,000 files of 40 MB and in
~4 million of 1 MB), so a payload hidden in scan data, or in a fake JPEG chained
after the real one, is still refused.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Generator, Iterator
from typing import NamedTuple, Protocol

from warden.errors import PolyglotMedia

#: Tags that make a browser or PHP treat the bytes as active content.
MARKUP = re.compile(rb"<(?:script|html|svg|iframe|body|object|embed|\?php)\b", re.IGNORECASE)
#: The part of `MARKUP` long enough never to occur by chance in compressed data.
ACTIVE = re.compile(
    rb"<(?:script|iframe|object|embed)\b|<\?php\s"
    rb"|<(?:svg|img|body|html|video|audio|image|style|input|details)\s[^<>]{0,200}?\bon[a-z]{3,20}\s*=",
    re.IGNORECASE,
)

#: The end of a JPEG entropy-coded segment: 0xFF followed by a real marker
#: (not stuffing 0x00, a restart marker D0-D7 or a fill byte 0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_PNG_PIXELS = frozenset({b"IDAT", b"fdAT"})
_PNG_COMPRESSED_TEXT = frozenset({b"zTXt", b"iTXt"})
_WEBP_PIXELS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANMF"})
#: Largest inflated text chunk examined; one that inflates further is refused.
MAX_INFLATED = 4 * 1024 * 1024
#: Most JPEG images one file may chain after EOI (MPF previews, depth maps).
MAX_EMBEDDED_JPEGS = 16


class Region(NamedTuple):
    """A span of `data` and whether it is text-like or entropy-coded pixel data."""

    where: str
    data: bytes
    start: int
    end: int
    pixels: bool = False


Walk = Generator[Region, None, int | None]


class Named(Protocol):
    """A sniffed format (`decode.Format`); only its name is used here."""

    @property
    def name(self) -> str: ...


def check_polyglot(data: bytes, fmt: str | Named) -> None:
    """Raise `PolyglotMedia` when the file is also a PDF, a ZIP or carries markup.

    `fmt` is the format `decode.sniff` found (or its name): it picks the walker.
    """
    fmt_name = fmt if isinstance(fmt, str) else fmt.name
    if b"%PDF-" in data[1:1024]:
        raise PolyglotMedia(f"{fmt_name} file that is also a PDF document (polyglot)")
    if b"PK\x05\x06" in data[-65_557:]:
        raise PolyglotMedia(f"{fmt_name} file that is also a ZIP archive (polyglot)")
    for region in regions(data, fmt_name):
        pattern = ACTIVE if region.pixels else MARKUP
        found = pattern.search(region.data, region.start, region.end)
        if found is not None:
            tag = found.group(0)[:16].decode("latin-1")
            raise PolyglotMedia(
                f"{fmt_name} file that carries markup ({tag!r}) in its {region.where}: "
                "refused as a polyglot"
            )


def regions(data: bytes, fmt_name: str) -> Iterator[Region]:
    """Every part of the file, labelled text-like or pixel data, in file order."""
    walkers = {"jpeg": _jpeg, "png": _png, "gif": _gif, "webp": _webp, "bmp": _bmp}
    walker = walkers.get(fmt_name)
    if walker is None:
        yield Region("content", data, 0, len(data))
        return
    yield from walker(data)


def _rest(data: bytes, start: int, where: str = "unparsed data") -> Region:
    return Region(where, data, start, len(data))


def _trailer(data: bytes, start: int) -> Walk:
    """Bytes after the image's end; JPEGs chained there (MPF) are walked like the first."""
    pos, chained = start, 0
    while pos < len(data):
        nxt = data.find(b"\xff\xd8\xff", pos)
        if nxt < 0 or chained >= MAX_EMBEDDED_JPEGS:
            yield _rest(data, pos, "trailer")
            return None
        if nxt > pos:
            yield Region("trailer", data, pos, nxt)
        chained += 1
        end = yield from _jpeg_stream(data, nxt)
        if end is None:
            return None
        pos = end
    return None


def _jpeg(data: bytes) -> Walk:
    end = yield from _jpeg_stream(data, 0)
    if end is not None:
        yield from _trailer(data, end)
    return None


def _jpeg_stream(data: bytes, start: int) -> Walk:
    """Walk one JPEG from its SOI; return the offset after its EOI (None: it never ends)."""
    pos, size = start + 2, len(data)
    while pos + 1 < size:
        if data[pos] != 0xFF:
            yield _rest(data, pos)  # garbage between segments: search it all
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:  # EOI
            return pos + 2
        if pos + 4 > size:
            yield _rest(data, pos)
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        seg_end = min(pos + 2 + length, size)
        yield from _segment(data, marker, pos + 4, seg_end)
        pos = seg_end
        if marker == 0xDA:  # SOS: entropy-coded data runs to the next real marker
            found = _JPEG_MARKER.search(data, pos)
            scan_end = size if found is None else found.start()
            yield Region("JPEG scan data", data, pos, scan_end, pixels=True)
            pos = scan_end
    return None


def _segment(data: bytes, marker: int, start: int, end: int) -> Iterator[Region]:
    """One JPEG marker segment; a thumbnail JPEG inside APPn (EXIF) is walked, not read."""
    where = f"JPEG segment 0x{marker:02X}"
    thumb = data.find(b"\xff\xd8\xff", start, end) if 0xE0 <= marker <= 0xEF else -1
    if thumb < 0:
        yield Region(where, data, start, end)
        return
    yield Region(where, data, start, thumb)
    inner = data[:end]
    after = yield from _jpeg_stream(inner, thumb)
    if after is not None and after < end:
        yield Region(where, data, after, end)


def _png(data: bytes) -> Walk:
    pos, size = 8, len(data)
    while pos + 8 <= size:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > size:
            yield _rest(data, pos)
            return None
        name = ctype.decode("latin-1")
        pixels = ctype in _PNG_PIXELS
        yield Region(f"PNG {name} chunk", data, pos, body_end + 4, pixels=pixels)
        if ctype in _PNG_COMPRESSED_TEXT:
            text = _inflate_text(ctype, data[pos + 8 : body_end])
            yield Region(f"PNG {name} chunk (inflated)", text, 0, len(text))
        pos = body_end + 4
        if ctype == b"IEND":
            yield from _trailer(data, pos)
            return None
    if pos < size:
        yield _rest(data, pos)
    return None


def _inflate_text(ctype: bytes, body: bytes) -> bytes:
    """The text of a zTXt or compressed iTXt chunk (empty when there is none)."""
    keyword_end = body.find(b"\x00")
    if keyword_end < 0:
        return b""
    if ctype == b"zTXt":
        compressed = body[keyword_end + 2 :]
    else:  # iTXt: keyword\0, flag, method, language\0, translated keyword\0, text
        if body[keyword_end + 1 : keyword_end + 2] != b"\x01":
            return b""
        parts = body[keyword_end + 3 :].split(b"\x00", 2)
        if len(parts) < 3:
            return b""
        compressed = parts[2]
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, MAX_INFLATED)
    except zlib.error:
        return b""  # not zlib: its raw bytes were searched already
    if inflater.unconsumed_tail:
        raise PolyglotMedia(
            f"png {ctype.decode()} chunk inflates past {MAX_INFLATED:,} bytes: refused as a polyglot"
        )
    return text


def _gif(data: bytes) -> Walk:
    size = len(data)
    flags = data[10] if size > 10 else 0
    pos = min(13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0), size)
    yield Region("GIF header and colour table", data, 0, pos)
    while pos < size:
        kind = data[pos]
        if kind == 0x3B:  # trailer
            yield from _trailer(data, pos + 1)
            return None
        if kind == 0x21:
            end = _gif_sub_blocks(data, pos + 2)
            yield Region("GIF extension", data, pos, min(end, size))
        elif kind == 0x2C and pos + 10 <= size:
            local = data[pos + 9]
            table_end = min(pos + 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0), size)
            yield Region("GIF image descriptor", data, pos, table_end)
            end = _gif_sub_blocks(data, table_end + 1)  # LZW code size, then the data
            yield Region("GIF image data", data, table_end, min(end, size), pixels=True)
        else:
            yield _rest(data, pos)
            return None
        pos = end
    return None


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    """The offset after a chain of GIF data sub-blocks (past the end if cut short)."""
    size = len(data)
    while pos < size:
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos
    return size + 1


def _webp(data: bytes) -> Walk:
    if len(data) < 12:
        yield _rest(data, 0, "content")
        return None
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = min(8 + riff_size + (riff_size & 1), len(data))
    pos = 12
    while pos + 8 <= end:
        ctype, length = struct.unpack_from("<4sI", data, pos)
        body_end = pos + 8 + length
        if body_end > end:
            yield Region("unparsed data", data, pos, end)
            break
        pixels = ctype in _WEBP_PIXELS
        yield Region(f"WebP {ctype.decode('latin-1')} chunk", data, pos, body_end, pixels=pixels)
        pos = body_end + (length & 1)
    yield from _trailer(data, end)
    return None


def _bmp(data: bytes) -> Walk:
    if len(data) < 14:
        yield _rest(data, 0, "content")
        return None
    file_size, pixels_at = struct.unpack_from("<I4xI", data, 2)
    if not 14 <= pixels_at <= len(data) or file_size < pixels_at:
        yield _rest(data, 0, "content")
        return None
    end = min(file_size, len(data))
    yield Region("BMP header", data, 0, pixels_at)
    yield Region("BMP pixels", data, pixels_at, end, pixels=True)
    yield from _trailer(data, end)
    return None
