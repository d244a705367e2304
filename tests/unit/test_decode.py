"""Safe decoding: every format, every limit, every hostile input gets a named refusal."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import encode, gradient
from warden import errors
from warden.media.decode import DecodeLimits, decode, sample_indices, sniff

LIMITS = DecodeLimits()


@pytest.mark.parametrize(
    ("fmt", "params", "name"),
    [
        ("JPEG", {"quality": 90}, "jpeg"),
        ("PNG", {}, "png"),
        ("WEBP", {"quality": 80}, "webp"),
        ("GIF", {}, "gif"),
        ("BMP", {}, "bmp"),
        ("TIFF", {}, "tiff"),
        ("AVIF", {"quality": 60}, "avif"),
    ],
)
def test_each_accepted_format_decodes_to_rgb(fmt, params, name):
    data = encode(gradient(320, 240), fmt, **params)
    media = decode(data, LIMITS)
    assert media.info.format == name
    assert (media.info.width, media.info.height) == (320, 240)
    assert media.frames[0].image.mode == "RGB"


def test_heic_decodes(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = encode(gradient(320, 240), "HEIF", quality=70)
    media = decode(data, LIMITS)
    assert media.info.format == "heic"
    assert media.info.mime == "image/heic"


def test_format_comes_from_bytes_not_name():
    png = encode(gradient(64, 64), "PNG")
    assert sniff(png).name == "png"  # whatever the upload was called


def test_zip_disguised_as_jpg_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("payload.txt", "hello")
    with pytest.raises(errors.UnsupportedFormat, match="ZIP archive"):
        decode(buf.getvalue(), LIMITS)


def test_zero_bytes_is_refused():
    with pytest.raises(errors.EmptyMedia, match="empty"):
        decode(b"", LIMITS)


def test_random_bytes_are_refused():
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(errors.UnsupportedFormat, match="not a recognised image format"):
        decode(b"\x00\x01" + data, LIMITS)


def test_svg_with_script_is_refused():
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(errors.UnsupportedFormat, match="SVG"):
        decode(svg, LIMITS)


def test_html_and_pdf_are_refused():
    with pytest.raises(errors.UnsupportedFormat, match="markup"):
        decode(b"<!doctype html><html><body>hi</body></html>", LIMITS)
    with pytest.raises(errors.UnsupportedFormat, match="PDF"):
        decode(b"%PDF-1.7\n%...", LIMITS)


def test_video_is_refused():
    mp4 = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00isomiso2"
    with pytest.raises(errors.UnsupportedFormat, match="video"):
        decode(mp4 + b"\x00" * 100, LIMITS)


def test_truncated_jpeg_is_refused_as_truncated():
    data = encode(gradient(640, 480), "JPEG", quality=90)
    with pytest.raises(errors.TruncatedMedia, match="truncated"):
        decode(data[: len(data) // 2], LIMITS)


def test_truncated_png_is_refused():
    data = encode(gradient(640, 480), "PNG")
    with pytest.raises((errors.TruncatedMedia, errors.CorruptMedia)):
        decode(data[: len(data) // 2], LIMITS)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_declaring_100k_by_100k_is_refused_before_decoding():
    with pytest.raises(errors.BadDimensions, match="100000x100000"):
        decode(_png_header_only(100_000, 100_000), LIMITS)


def test_pixel_limit_is_checked_from_the_header():
    limits = DecodeLimits(max_pixels=1_000_000)
    with pytest.raises(errors.TooManyPixels, match="limit is 1,000,000"):
        decode(_png_header_only(2000, 2000), limits)


def test_decompression_bomb_png_is_refused_without_decoding():
    # 20000 x 20000 of zeros compresses to a few hundred KB: refuse from the header
    raw = zlib.compress(b"\x00" * (20000 * 3 + 1) * 64, 9)
    data = _png_header_only(20000, 20000).replace(zlib.compress(b"\x00" * 64), raw)
    with pytest.raises(errors.TooManyPixels, match="400,000,000"):
        decode(data, DecodeLimits(max_pixels=100_000_000))


def test_absurd_aspect_ratio_is_refused():
    with pytest.raises(errors.BadDimensions, match="no side may exceed"):
        decode(_png_header_only(1, 1_000_000), LIMITS)


def _gif(frames: int, size: int = 16) -> bytes:
    images = []
    for i in range(frames):
        frame = Image.new("L", (size, size), color=(i * 7) % 256)
        frame.putpixel((i % size, (i // size) % size), 255 - (i % 256))
        images.append(frame.convert("P"))
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)
    return buf.getvalue()


def test_gif_with_thousands_of_frames_is_refused():
    with pytest.raises(errors.TooManyFrames, match="3,000 frames"):
        decode(_gif(3000, 4), DecodeLimits(max_frames=2000))


def test_animation_is_sampled_first_and_evenly_spaced():
    media = decode(_gif(40), DecodeLimits(sample_frames=5))
    assert media.info.frame_count == 40
    assert [f.index for f in media.frames] == [0, 10, 20, 29, 39]
    assert media.info.sampled_frames == 5


def test_sample_indices():
    assert sample_indices(1, 8) == [0]
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(100, 4) == [0, 33, 66, 99]


def test_file_size_limit():
    data = encode(gradient(64, 64), "PNG")
    with pytest.raises(errors.MediaTooLarge, match="limit is 100"):
        decode(data, DecodeLimits(max_bytes=100))


def test_decode_timeout_names_the_problem():
    with pytest.raises(errors.DecodeTimeout, match="longer than"):
        decode(_gif(400, 64), DecodeLimits(timeout_s=1e-6, sample_frames=8))


def test_jpeg_is_draft_decoded_to_scanning_resolution():
    big = gradient(4000, 3000)
    media = decode(encode(big, "JPEG", quality=85), DecodeLimits(scan_side=512))
    assert (media.info.width, media.info.height) == (4000, 3000)
    w, h = media.frames[0].image.size
    assert min(w, h) >= 512
    assert w <= 1000 and h <= 750  # decoded at 1/4 scale, never at full size


def test_exif_orientation_is_applied():
    img = gradient(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    media = decode(encode(img, "JPEG", exif=exif.tobytes()), LIMITS)
    assert media.frames[0].image.size == (200, 300)


@pytest.mark.parametrize(
    ("suffix", "what"),
    [
        (b"<script>alert(1)</script>", "markup"),
        (b"<html><body>x</body></html>", "markup"),
    ],
)
def test_polyglot_with_markup_is_refused(suffix, what):
    data = encode(gradient(64, 64), "JPEG") + suffix
    with pytest.raises(errors.PolyglotMedia, match=what):
        decode(data, LIMITS)


def test_jpeg_zip_polyglot_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "payload")
    data = encode(gradient(64, 64), "JPEG") + buf.getvalue()
    with pytest.raises(errors.PolyglotMedia, match="ZIP"):
        decode(data, LIMITS)


def test_corrupt_png_chunk_is_refused():
    data = bytearray(encode(gradient(64, 64), "PNG"))
    data[40:60] = b"\xff" * 20  # smash compressed data
    with pytest.raises(errors.MediaError):
        decode(bytes(data), LIMITS)


def test_transparent_png_is_composited_on_white():
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    media = decode(encode(img, "PNG"), LIMITS)
    assert media.frames[0].image.getpixel((5, 5)) == (255, 255, 255)


# -- JPEG XL: pict-rs stores it as uploaded (robinst/pict-rs 31049d3 src/formats/image.rs:40-55)


def _jxl(image: Image.Image, **params: object) -> bytes:
    import pillow_jxl  # noqa: F401 - registers the encoder with Pillow

    return encode(image, "JXL", **params)


class _BitWriter:
    """JPEG XL bit order: least-significant bit first (libjxl lib/jxl/enc_bit_writer)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def write(self, count: int, value: int) -> _BitWriter:
        self.bits += [(value >> i) & 1 for i in range(count)]
        return self

    def done(self) -> bytes:
        padded = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(
            sum(bit << i for i, bit in enumerate(padded[n : n + 8]))
            for n in range(0, len(padded), 8)
        )


def _codestream_header(width: int, height: int, *, animated: bool = False) -> bytes:
    """FF 0A, a SizeHeader (not small, U32 selector 3: 30 bits + 1, ratio 0) and
    ImageMetadata, as libjxl's SizeHeader/ImageMetadata::VisitFields write them."""
    bits = _BitWriter().write(1, 0).write(2, 3).write(30, height - 1)
    bits.write(3, 0).write(2, 3).write(30, width - 1)
    if animated:  # all_default 0, extra_fields 1, orientation, no size, no preview
        bits.write(1, 0).write(1, 1).write(3, 0).write(1, 0).write(1, 0).write(1, 1)
    else:
        bits.write(1, 1)
    return b"\xff\x0a" + bits.done() + bytes(range(64))


@pytest.mark.parametrize("container", [False, True], ids=["codestream", "container"])
def test_jpeg_xl_decodes(container):
    data = _jxl(gradient(300, 201), quality=80, use_container=container)
    assert sniff(data).name == "jxl"
    media = decode(data, LIMITS)
    assert (media.info.format, media.info.mime) == ("jxl", "image/jxl")
    assert (media.info.width, media.info.height) == (300, 201)
    assert media.frames[0].image.mode == "RGB"


def test_jpeg_xl_limits_apply_before_the_plugin_decodes(monkeypatch):
    """The plugin decodes the whole image inside Image.open: the header comes first."""
    from pillow_jxl import JpegXLImagePlugin

    data = _jxl(gradient(640, 480), quality=80)

    def never(self: object) -> None:
        raise AssertionError("the JXL plugin decoded a file over the limits")

    monkeypatch.setattr(JpegXLImagePlugin.JXLImageFile, "_open", never)
    with pytest.raises(errors.BadDimensions, match="640x480"):
        decode(data, DecodeLimits(max_side=600))
    with pytest.raises(errors.TooManyPixels):
        decode(data, DecodeLimits(max_pixels=100_000))


def test_jpeg_xl_header_declaring_a_huge_image_is_refused_unread():
    with pytest.raises(errors.BadDimensions, match="40000x40000"):
        decode(_codestream_header(40_000, 40_000), LIMITS)
    with pytest.raises(errors.TooManyPixels):
        decode(_codestream_header(20_000, 20_000), LIMITS)


def test_jpeg_xl_animation_is_refused_rather_than_half_scanned():
    with pytest.raises(errors.UnsupportedFormat, match="animation"):
        decode(_codestream_header(64, 64, animated=True), LIMITS)


def test_truncated_jpeg_xl_header_is_refused_as_truncated():
    with pytest.raises(errors.TruncatedMedia):
        decode(b"\xff\x0a\x00", LIMITS)


# -- limits before every allocation (issue 12) ------------------------------------


def test_progressive_jpeg_scans_are_counted_before_decoding():
    from tests import bombs

    ordinary = encode(gradient(640, 480), "JPEG", progressive=True)
    assert decode(ordinary, LIMITS).info.format == "jpeg"
    repeated = bombs.progressive_scan_bomb(30, side=640)
    assert decode(repeated, DecodeLimits(max_scans=40)).info.width == 640
    with pytest.raises(errors.TooManyScans, match="more than 20 scans; the limit is 20"):
        decode(repeated, DecodeLimits(max_scans=20))


def test_webp_canvas_is_read_from_the_header_before_libwebp_allocates_it():
    from tests import bombs
    from warden.media.headers import webp_canvas

    real = encode(gradient(300, 200), "WEBP", quality=80)
    assert webp_canvas(real) == (300, 200)
    assert webp_canvas(encode(gradient(300, 200), "WEBP", lossless=True)) == (300, 200)
    assert webp_canvas(bombs.webp_tiny_huge()) == (16_384, 16_384)
    with pytest.raises(errors.TooManyPixels, match="16384x16384"):
        decode(bombs.webp_tiny_huge(), LIMITS)
    with pytest.raises(errors.BadDimensions, match="300x200"):
        decode(real, DecodeLimits(max_side=250))


def test_every_page_is_checked_before_it_is_decoded():
    from tests import bombs

    two_pages = bombs.tiff_pages([(16, 16), (16, 16), (3000, 3000)])
    with pytest.raises(errors.TooManyPixels, match="frame 2 declares 3000x3000"):
        decode(two_pages, DecodeLimits(max_pixels=1_000_000))


def test_pixels_decoded_across_frames_have_a_budget():
    data = _gif(40, 64)  # 40 frames of 64 x 64 = 163,840 pixels in all
    with pytest.raises(errors.TooManyPixels, match="the limit across frames is 100,000"):
        decode(data, DecodeLimits(max_decoded_pixels=100_000))
    assert decode(data, DecodeLimits(max_decoded_pixels=200_000)).info.frame_count == 40
