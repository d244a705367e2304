"""Decompression and CPU bombs against the decoder processes: each refused by name, in time.

Issue 12's findings 1-4: a progressive JPEG whose repeated scans decode for
minutes, GIF frames that grow a 1x1 canvas to gigabytes, a TIFF's huge second
page, a 30-byte WebP whose canvas libwebp allocates while opening, a TIFF tile
whose size overflows, corrupt AVIF/HEIC. The pool must refuse each within
`decode_timeout_s` + 1 s, kill a worker that overruns, and keep serving.
"""

from __future__ import annotations

import os
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import bombs
from tests.conftest import encode, gradient
from warden import errors
from warden.domain.policy import FailMode, LabelPolicy
from warden.domain.verdict import Decision
from warden.media.decode import DecodeLimits, decode
from warden.media.decoder_pool import Analysis, DecoderPool
from warden.media.pipeline import ScanContext, Scanner

LIMITS = DecodeLimits(timeout_s=3.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[DecoderPool]:
    pool = DecoderPool(2, memory_mb=512)
    pool.start()
    yield pool
    pool.close()


def _heic_truncated() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = encode(gradient(320, 240), "HEIF", quality=60)
    return data[: len(data) // 2]


#: Past the work budget (scans x pixels) but not the scan count: the deadline's cases.
NO_SCAN_BUDGET = 10**15

BOMBS: dict[str, tuple[Callable[[], bytes], set[str]]] = {
    "jpeg-5000-scans": (lambda: bombs.progressive_scan_bomb(5000), {"too_many_scans"}),
    "jpeg-90-scans-of-100MP": (lambda: bombs.progressive_scan_bomb(90), {"too_many_scans"}),
    "gif-canvas-growth": (bombs.gif_canvas_growth, {"too_many_pixels", "bad_dimensions"}),
    "gif-50-bytes-4GB": (bombs.gif_tiny_huge, {"too_many_pixels", "bad_dimensions"}),
    "tiff-second-page": (
        lambda: bombs.tiff_pages([(16, 16), (20_000, 20_000)]),
        {"too_many_pixels"},
    ),
    "webp-vp8x-30-bytes": (bombs.webp_tiny_huge, {"too_many_pixels"}),
    "webp-vp8l-26-bytes": (lambda: bombs.webp_tiny_huge("VP8L"), {"too_many_pixels"}),
    "tiff-tile-overflow": (
        lambda: bombs.tiff_pages([(16, 16)], tile=0xFFFFFFF0),
        {"corrupt_media"},
    ),
    "avif-corrupt": (
        lambda: bombs.corrupt(encode(gradient(320, 240), "AVIF", quality=60), 0.3),
        {"corrupt_media"},
    ),
    "heic-truncated": (_heic_truncated, {"corrupt_media", "truncated_media"}),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_each_bomb_is_refused_by_name_in_time(pool: DecoderPool, name: str) -> None:
    build, codes = BOMBS[name]
    data = build()
    started = time.monotonic()
    with pytest.raises(errors.MediaError) as refused:
        pool.run(data, LIMITS)
    assert refused.value.code in codes, refused.value.message
    assert time.monotonic() - started < LIMITS.timeout_s + 1.0


@pytest.mark.parametrize("name", ["gif-canvas-growth", "tiff-second-page", "tiff-tile-overflow"])
def test_bombs_are_refused_in_process_too(name: str) -> None:
    """The limits are the decoder's own, not only the pool's: `decode` refuses them."""
    build, codes = BOMBS[name]
    with pytest.raises(errors.MediaError) as refused:
        decode(build(), LIMITS)
    assert refused.value.code in codes


def test_a_slow_bomb_is_killed_at_the_deadline_and_the_worker_replaced(pool: DecoderPool) -> None:
    """90 repeated scans of 100 MP decode for ~4 s; with the work budget lifted (the
    deadline is the backstop for whatever costs more than its header says) the
    worker is killed at 1 s."""
    bomb = bombs.progressive_scan_bomb(90)
    before, replaced = set(pool.pids()), pool.replaced
    started = time.monotonic()
    with pytest.raises(errors.DecodeTimeout, match="longer than 1 s"):
        pool.run(bomb, DecodeLimits(timeout_s=1.0, max_scan_pixels=NO_SCAN_BUDGET))
    assert time.monotonic() - started < 2.0
    assert pool.replaced == replaced + 1 and set(pool.pids()) != before
    assert len(pool.pids()) == 2
    ordinary = pool.run(encode(gradient(640, 480)), LIMITS)
    assert ordinary.media.info.format == "jpeg" and ordinary.frames[0].pdq


def _png_zeros(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    raw = zlib.compress((b"\x00" * (width + 1)) * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_memory_past_the_workers_address_space_is_refused_not_taken() -> None:
    """A 64 MP grayscale PNG is within the pixel limit, but not within a 48 MiB decoder."""
    small = DecoderPool(1, memory_mb=48)
    try:
        with pytest.raises(errors.TooManyPixels):
            small.run(_png_zeros(8000, 8000), LIMITS)
        assert small.run(encode(gradient(320, 240)), LIMITS).media.info.width == 320
    finally:
        small.close()


def test_a_worker_killed_from_outside_costs_its_file_only_under_the_failure_mode(
    pool: DecoderPool,
) -> None:
    """Killed mid-file (the OOM killer, an admin): that file gets `scan_error` under the
    source's failure mode; a worker killed while idle costs nothing."""
    scanner = Scanner(
        limits=DecodeLimits(timeout_s=5.0, max_scan_pixels=NO_SCAN_BUDGET),
        policy=LabelPolicy.from_thresholds({}),
        classifier=None,
        fail_modes={"upload": FailMode.CLOSED},
        decoder=pool,
    )
    bomb = bombs.progressive_scan_bomb(90)
    with ThreadPoolExecutor(1) as runner:
        busy = runner.submit(scanner.scan, bomb, ScanContext(source="upload"))
        time.sleep(0.5)  # the bomb is decoding in one worker; the other is idle
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        verdict = busy.result(timeout=10)
    assert verdict.decision is Decision.REJECT
    assert verdict.reasons[0].code == "scan_error"
    assert "SIGKILL" in verdict.reasons[0].message
    assert verdict.reasons[0].detail["fail_mode"] == "closed"
    # the idle worker's death is noticed at checkout and costs no file
    for _ in range(3):
        assert isinstance(pool.run(encode(gradient(320, 240)), LIMITS), Analysis)
    assert len(pool.pids()) == 2


class _Exploding:
    """A decoder that fails as no MediaError would: a bug, a lost process."""

    def run(
        self, data: bytes, limits: DecodeLimits, *, give_up_at: float | None = None
    ) -> Analysis:
        raise OverflowError("Python int too large to convert to C long")

    def is_heavy(self, data: bytes) -> bool:
        return False

    def start(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize(("mode", "decision"), [("closed", "reject"), ("open", "accept")])
def test_any_exception_becomes_scan_error_under_the_failure_mode(mode: str, decision: str) -> None:
    scanner = Scanner(
        limits=LIMITS,
        policy=LabelPolicy.from_thresholds({}),
        classifier=None,
        fail_modes={"upload": FailMode(mode)},
        decoder=_Exploding(),
    )
    verdict = scanner.scan(b"\xff\xd8\xff anything", ScanContext(source="upload"))
    assert verdict.decision.value == decision
    assert verdict.reasons[0].code == "scan_error" and "OverflowError" in verdict.reasons[0].message


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 90}),
        ("PNG", {}),
        ("WEBP", {"quality": 80}),
        ("GIF", {}),
        ("TIFF", {}),
        ("AVIF", {"quality": 60}),
        ("HEIF", {"quality": 60}),
        ("JXL", {"quality": 80}),
    ],
)
def test_every_accepted_format_decodes_in_the_workers_within_their_limits(
    pool: DecoderPool, fmt: str, params: dict[str, object]
) -> None:
    import pillow_heif
    import pillow_jxl  # noqa: F401 - registers the encoder

    pillow_heif.register_heif_opener()
    analysis = pool.run(encode(gradient(640, 480), fmt, **params), LIMITS)
    assert (analysis.media.info.width, analysis.media.info.height) == (640, 480)
    assert analysis.media.frames[0].image.mode == "RGB" and len(analysis.frames[0].pdq) == 64


def test_costly_files_leave_a_worker_for_ordinary_ones() -> None:
    """Files as costly as the limits allow take at most workers - 1 decoders: a photo
    sent while four of them are queued is decoded at once, not after them."""
    pool = DecoderPool(2, memory_mb=512)
    pool.start()
    costly = bombs.progressive_scan_bomb(14)  # 20 scans of 100 MP, ~0.8 s each
    assert pool.is_heavy(costly)
    photo = encode(gradient(800, 600))
    assert not pool.is_heavy(photo)
    try:
        started = time.monotonic()
        pool.run(costly, LIMITS)
        costly_s = time.monotonic() - started
        with ThreadPoolExecutor(4) as runner:
            queued = [runner.submit(pool.run, costly, LIMITS) for _ in range(4)]
            time.sleep(0.3)
            started = time.monotonic()
            assert pool.run(photo, LIMITS).media.info.width == 800
            photo_s = time.monotonic() - started
            assert not all(f.done() for f in queued)  # the costly ones were still going
            for future in queued:
                assert future.result(timeout=30).media.info.width == 10_000
    finally:
        pool.close()
    # without a worker kept free it would wait for a costly decode to finish first
    assert photo_s < costly_s / 2, (photo_s, costly_s)


def test_a_file_nobody_waits_for_any_more_is_not_decoded_and_close_frees_waiters() -> None:
    """Past its deadline a file gives up waiting for a worker (its answer is already
    `scan_timeout`), and closing the pool wakes everyone still waiting."""
    pool = DecoderPool(1, memory_mb=512)
    pool.start()
    slow = bombs.progressive_scan_bomb(90)
    no_budget = DecodeLimits(timeout_s=3.0, max_scan_pixels=NO_SCAN_BUDGET)
    with ThreadPoolExecutor(2) as runner:
        busy = runner.submit(pool.run, slow, no_budget)
        time.sleep(0.2)
        with pytest.raises(errors.ScanTimeout, match="no decoder process was free"):
            pool.run(encode(gradient(320, 240)), LIMITS, give_up_at=time.monotonic() + 0.3)
        waiting = runner.submit(pool.run, encode(gradient(320, 240)), LIMITS)
        time.sleep(0.2)
        pool.close()
        with pytest.raises(errors.ScanError, match="closed"):
            waiting.result(timeout=5)
        with pytest.raises(errors.ScanError, match="SIGKILL"):
            busy.result(timeout=5)  # its worker was stopped under it
    assert pool.run(encode(gradient(320, 240)), LIMITS).media.info.width == 320  # restarts
    pool.close()
