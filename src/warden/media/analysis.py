"""What decoding hands the scanner: sampled frames and their PDQ hashes.

`Decoder` is the scanner's view of a decoder; `InProcessDecoder` decodes in the
calling thread (tests and tools that trust their input), `decoder_pool.DecoderPool`
in killable worker processes (the service).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from warden.domain.verdict import FrameHash
from warden.media import decode as decoding
from warden.media import hashing


@dataclass(frozen=True)
class Analysis:
    """A decoded file as the pipeline needs it: sampled frames and their PDQ hashes."""

    media: decoding.DecodedMedia
    frames: tuple[FrameHash, ...]
    decode_ms: float = 0.0
    hash_ms: float = 0.0


def analyse(data: bytes, limits: decoding.DecodeLimits) -> Analysis:
    """Decode and hash one file, here in this process (raises `MediaError`)."""
    t0 = time.perf_counter()
    media = decoding.decode(data, limits)
    return hash_frames(media, (time.perf_counter() - t0) * 1000.0)


def hash_frames(media: decoding.DecodedMedia, decode_ms: float) -> Analysis:
    """PDQ of every sampled frame. Safe in the service itself: the frames are
    already reduced to about the scanning size, so the work is bounded."""
    t0 = time.perf_counter()
    frames = tuple(
        FrameHash(f.index, hs[0].hex, hs[0].quality, tuple(h.hex for h in hs[1:]))
        for f in media.frames
        for hs in (hashing.pdq_dihedral(f.image),)
    )
    return Analysis(media, frames, decode_ms, (time.perf_counter() - t0) * 1000.0)


class Decoder(Protocol):
    """What the scanner needs: bytes and limits in, an `Analysis` or a refusal out."""

    def run(
        self, data: bytes, limits: decoding.DecodeLimits, *, give_up_at: float | None = None
    ) -> Analysis: ...

    def is_heavy(self, data: bytes) -> bool: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class InProcessDecoder:
    """Decodes in the calling thread: for tests and tools that trust their input.
    Only the cooperative deadline applies; nothing bounds memory."""

    def run(
        self, data: bytes, limits: decoding.DecodeLimits, *, give_up_at: float | None = None
    ) -> Analysis:
        return analyse(data, limits)

    def is_heavy(self, data: bytes) -> bool:
        """Every file is decoded where it is asked for: none waits for another."""
        return False

    def start(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to stop."""
