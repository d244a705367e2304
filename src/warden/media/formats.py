"""The formats Warden decodes, identified from the bytes alone.

Never from a file name or a declared content type: those are the uploader's
word. What is not an image is refused naming what it is (a PDF, an archive,
video, markup), so a refusal says what was seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from warden.errors import UnsupportedFormat
from warden.media import jxl


@dataclass(frozen=True)
class Format:
    """A format Warden decodes: its name, MIME type and Pillow's plugin name."""

    name: str
    mime: str
    pillow: str


FORMATS = {
    f.name: f
    for f in (
        Format("jpeg", "image/jpeg", "JPEG"),
        Format("png", "image/png", "PNG"),
        Format("gif", "image/gif", "GIF"),
        Format("webp", "image/webp", "WEBP"),
        Format("bmp", "image/bmp", "BMP"),
        Format("tiff", "image/tiff", "TIFF"),
        Format("avif", "image/avif", "AVIF"),
        Format("heic", "image/heic", "HEIF"),
        Format("jxl", "image/jxl", "JXL"),
    )
}

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_VIDEO_BRANDS = {
    b"isom",
    b"iso2",
    b"mp41",
    b"mp42",
    b"qt  ",
    b"M4V ",
    b"3gp4",
    b"3gp5",
    b"dash",
    b"avc1",
}

#: Signatures of things that are not images, named so a refusal can say what it saw.
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"OggS", "an Ogg stream"),
    (b"ID3", "an MP3 file"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
)
_TEXT_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<", re.DOTALL)


def sniff(data: bytes) -> Format:
    """Identify the format from the first bytes, or refuse naming what it is."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return FORMATS["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FORMATS["png"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FORMATS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FORMATS["webp"]
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WAVE"):
        raise UnsupportedFormat("not an image: a RIFF video or audio file")
    if head[:2] == b"BM" and len(head) >= 26:
        return FORMATS["bmp"]
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return FORMATS["tiff"]
    if jxl.is_jxl(head):
        return FORMATS["jxl"]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(len(head), 64), 4)}
        if brand in _AVIF_BRANDS:
            return FORMATS["avif"]
        if brand in _HEIC_BRANDS or (brand not in _VIDEO_BRANDS and compatible & _HEIC_BRANDS):
            return FORMATS["heic"]
        raise UnsupportedFormat(
            f"not an image: an ISO media file ({brand.decode('latin-1').strip()!r}); video is not accepted"
        )
    for magic, what in _NOT_IMAGES:
        if head.startswith(magic):
            raise UnsupportedFormat(f"not an image: {what}")
    if _TEXT_START.match(head):
        kind = "an SVG image" if b"<svg" in data[:4096].lower() else "markup (HTML/XML/SVG)"
        raise UnsupportedFormat(f"not an accepted image: {kind}; SVG and markup can carry scripts")
    raise UnsupportedFormat(
        "not a recognised image format (JPEG, PNG, GIF, WebP, AVIF, HEIC, JPEG XL, BMP, TIFF)"
    )
