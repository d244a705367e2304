"""Safe decoding: from untrusted bytes to a few small RGB frames, or a named refusal.

The format is identified from the bytes alone (`formats`: never a file name or
a declared content type), the header is checked against the limits before a
single pixel is decoded (`preflight`, whose names this module re-exports), JPEGs are decoded in draft mode straight to the scanning resolution,
animations are sampled (first frame and evenly spaced ones), and every failure
becomes a `MediaError` whose code and message say what was wrong.

Limits are checked before every allocation, not only on the first frame: the
bytes are read for what Pillow would allocate before `Image.open` (WebP's
canvas, which libwebp allocates while opening; the number of progressive JPEG
scans, each a full pass over the image), the size is checked again after every
seek (a GIF frame larger than its logical screen grows the canvas, a TIFF page
or HEIF image has its own size), the pixels decoded across frames have a
budget, and Pillow's own bomb guard stays on as an error.

Decoding is cooperative about time here (the deadline is checked between
frames); `decoder_pool` runs this module in worker processes that are killed
at the deadline, so a single frame that runs away cannot hold a worker either.
"""

from __future__ import annotations

import functools
import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from warden.domain.verdict import MediaInfo
from warden.errors import (
    CorruptMedia,
    DecodeTimeout,
    EmptyMedia,
    MediaError,
    MediaTooLarge,
    TooManyFrames,
    TooManyPixels,
    TruncatedMedia,
    UnsupportedFormat,
)
from warden.media import jxl
from warden.media.formats import FORMATS, Format, sniff
from warden.media.polyglot import check_polyglot
from warden.media.preflight import (
    DecodeLimits,
    check_size,
    check_structure,
    preflight,
    preflight_work,
)

__all__ = [
    "FORMATS",
    "DecodeLimits",
    "DecodedMedia",
    "Format",
    "Frame",
    "check_structure",
    "decode",
    "jxl_decoder",
    "preflight",
    "preflight_work",
    "sample_indices",
    "sniff",
]


@dataclass(frozen=True)
class Frame:
    """One sampled frame, RGB, no larger than about twice the scanning side."""

    index: int
    image: Image.Image


@dataclass(frozen=True)
class DecodedMedia:
    info: MediaInfo
    frames: tuple[Frame, ...]


@functools.cache
def _register_plugins() -> bool:
    """Prepare Pillow once, on first use rather than at import.

    Teaches it HEIC (pillow-heif) and JPEG XL (pillow-jxl-plugin), and keeps
    Pillow's own decompression-bomb guard on as an error: it fires where Pillow
    allocates inside a plugin (a GIF canvas that grows, a TIFF tile, an MPO
    frame), places `_decode` cannot reach between two calls. Its limit is set
    to `max_pixels` on every decode; `_decode` checks the same limits first
    wherever it can, so the refusal names the limit.
    """
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    jxl_decoder()
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - pillow-heif is a dependency
        return False
    return True


@functools.cache
def jxl_decoder() -> bool:
    """Whether JPEG XL can be decoded here (pillow-jxl-plugin, a dependency).

    Importing the plugin registers it with Pillow; its decoder then runs on one
    thread (it would use every core), like the other decoders in the pool.
    """
    try:
        from pillow_jxl import JpegXLImagePlugin
    except ImportError:
        return False
    JpegXLImagePlugin.DECODE_THREADS = 0
    return True


class _Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seconds = seconds
        self._end = clock() + seconds

    def check(self, stage: str) -> None:
        if self._clock() > self._end:
            raise DecodeTimeout(f"decoding took longer than {self._seconds:g} s (at {stage})")


def sample_indices(frame_count: int, wanted: int) -> list[int]:
    """The first frame and evenly spaced others, `wanted` at most, ascending."""
    if frame_count <= wanted:
        return list(range(frame_count))
    if wanted == 1:
        return [0]
    step = (frame_count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB as a viewer on a light page would see it (alpha composited on white)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return ImageOps.autocontrast(image.convert("F").convert("L")).convert("RGB")
    return image.convert("RGB")


#: Modes `Image.reduce` handles; others (palette, 1-bit, 16-bit) are converted first.
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "I", "F", "CMYK", "YCbCr", "PA"})


def _shrink(image: Image.Image, scan_side: int) -> Image.Image:
    """Reduce by an integer factor so the shorter side stays >= scan_side.

    Runs before the RGB conversion, so a large image is converted (and its alpha
    composited) at scanning size: converting a 100 MP RGBA image first would
    hold three more full-size copies.
    """
    factor = min(image.size) // scan_side
    if factor < 2:
        return image
    if image.mode not in _REDUCIBLE:
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _classify_pillow_error(exc: BaseException, fmt: Format) -> MediaError:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, EOFError) or "truncated" in lowered or "premature end" in lowered:
        return TruncatedMedia(f"{fmt.name} file is truncated ({text})")
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return TooManyPixels(f"{fmt.name} image is a decompression bomb ({text})")
    if isinstance(exc, OverflowError):
        return CorruptMedia(f"{fmt.name} file declares values out of range ({text})")
    if isinstance(exc, zlib.error):
        return CorruptMedia(f"{fmt.name} compressed data is corrupt ({text})")
    return CorruptMedia(f"{fmt.name} file is corrupt ({text})")


def decode(data: bytes, limits: DecodeLimits, *, preflighted: bool = False) -> DecodedMedia:
    """Decode untrusted bytes into sampled RGB frames, or raise a `MediaError`.

    `preflighted`: the caller ran `preflight` on these very bytes with these
    limits and it passed (the decoder pool does, before a file may take a
    worker), so its structure checks are not run twice (0.08 ms a JPEG)."""
    if not data:
        raise EmptyMedia("the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"the file is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    fmt = sniff(data)
    check_polyglot(data, fmt)
    if not preflighted:
        check_structure(data, fmt, limits)
    _register_plugins()
    Image.MAX_IMAGE_PIXELS = limits.max_pixels  # process-wide; every decode sets the same
    deadline = _Deadline(limits.timeout_s)
    try:
        return _decode(data, fmt, limits, deadline)
    except MediaError:
        raise
    except (
        Image.DecompressionBombWarning,
        OverflowError,
        RuntimeError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        TypeError,
        IndexError,
        KeyError,
        zlib.error,
        struct.error,
        UnidentifiedImageError,
        Image.DecompressionBombError,
    ) as exc:
        raise _classify_pillow_error(exc, fmt) from exc
    except MemoryError as exc:
        raise TooManyPixels(f"{fmt.name} image needs more memory than allowed") from exc


def _check_jxl(data: bytes, fmt: Format, limits: DecodeLimits) -> None:
    """The JPEG XL plugin decodes inside `Image.open` and shows one frame: check first."""
    if not jxl_decoder():
        raise UnsupportedFormat(
            "jxl: no JPEG XL decoder is installed (pillow-jxl-plugin); have pict-rs "
            "convert uploads with PICTRS__MEDIA__IMAGE__FORMAT"
        )
    header = jxl.read_header(data)
    check_size(fmt, header.width, header.height, limits)
    if header.animated:
        raise UnsupportedFormat(
            "jxl animation: only its first frame could be scanned, so it is refused"
        )


def _open(data: bytes, fmt: Format) -> Image.Image:
    """`Image.open` for one known format, minus its own size check at the end.

    That check would refuse a huge header in Pillow's words before `_check_size`
    can say which limit; the checks inside the plugins (a GIF frame growing the
    canvas, a TIFF tile, WebP) still run, against `Image.MAX_IMAGE_PIXELS`.
    """
    if fmt.pillow not in Image.OPEN:
        Image.init()
    entry = Image.OPEN.get(fmt.pillow)
    if entry is None:
        raise UnsupportedFormat(f"{fmt.name}: no decoder for this format is installed")
    factory, accept = entry
    accepted = True if accept is None else accept(data[:16])
    if isinstance(accepted, str) or not accepted:
        raise CorruptMedia(f"{fmt.name} file has a header its decoder does not accept")
    return factory(io.BytesIO(data), "")


class _PixelBudget:
    """Pixels decoded so far across frames and pages, checked before each one is.

    GIF, APNG and WebP animations decode every frame up to the last one sampled
    (each is drawn on the previous), so a long animation of large frames costs
    frames x canvas even when only eight are scanned.
    """

    def __init__(self, fmt: Format, limits: DecodeLimits) -> None:
        self._fmt = fmt
        self._limits = limits
        self.spent = 0

    def charge(self, image: Image.Image, frame: int) -> None:
        width, height = image.size
        check_size(self._fmt, width, height, self._limits, what=f"frame {frame}")
        self.spent += width * height
        if self.spent > self._limits.max_decoded_pixels:
            raise TooManyPixels(
                f"{self._fmt.name}: decoding up to frame {frame} means {self.spent:,} pixels; "
                f"the limit across frames is {self._limits.max_decoded_pixels:,}"
            )


def _decode(data: bytes, fmt: Format, limits: DecodeLimits, deadline: _Deadline) -> DecodedMedia:
    if fmt.name == "jxl":
        _check_jxl(data, fmt, limits)
    image = _open(data, fmt)
    width, height = image.size
    check_size(fmt, width, height, limits)
    frame_count = int(getattr(image, "n_frames", 1) or 1)
    if frame_count > limits.max_frames:
        raise TooManyFrames(
            f"{fmt.name} animation has {frame_count:,} frames; the limit is {limits.max_frames:,}"
        )
    deadline.check("header")
    if fmt.name == "jpeg":
        image.draft("RGB", (limits.scan_side, limits.scan_side))
    wanted = sample_indices(frame_count, limits.sample_frames)
    budget = _PixelBudget(fmt, limits)
    frames: list[Frame] = []
    current = 0
    budget.charge(image, 0)
    for index in wanted:
        while current < index:
            current += 1
            # seeking decodes the frame before (a GIF draws on it), then reads
            # this one's header: its size may have grown, so check before loading
            image.seek(current)
            budget.charge(image, current)
            deadline.check(f"frame {current}")
        image.load()
        frame = ImageOps.exif_transpose(image) if index == 0 else image
        rgb = _to_rgb(_shrink(frame, limits.scan_side))
        # a frame must be a snapshot (the next one draws over the file's image); the
        # orientation fix, a conversion or a reduction made a new image already
        frames.append(Frame(index, rgb.copy() if rgb is image else rgb))
        deadline.check(f"frame {index}")
    info = MediaInfo(
        format=fmt.name,
        mime=fmt.mime,
        width=width,
        height=height,
        frame_count=frame_count,
        sampled_frames=len(frames),
    )
    return DecodedMedia(info, tuple(frames))
