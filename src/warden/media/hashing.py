"""Hashes of media: SHA-256 of the exact bytes, PDQ of what the pixels look like.

SHA-256 finds the very same file again; PDQ (Meta's perceptual hash) finds it
after resizing or recompression. PDQ is computed by `pdq_hasher`, compiled with
numba and bit for bit the `pdqhash` package (ThreatExchange's C++), which the
tests keep as the reference; it is 5-8x faster and releases the GIL. Hex strings
follow ThreatExchange's convention (the first hash bit is the most significant
bit of the first hex digit), so hashes exchange with HMA and industry lists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from warden.domain.signals import PDQ
from warden.media import pdq_hasher

PDQ_BITS = 256
PDQ_HEX_LEN = 64

#: Names of the eight dihedral variants, in the order pdqhash.compute_dihedral returns them.
DIHEDRAL = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)


@dataclass(frozen=True)
class PdqHash:
    """A PDQ hash and its quality (0-100; below ~50 the hash says little)."""

    hex: str
    quality: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bits_to_hex(bits: np.ndarray) -> str:
    """256 zero/one values (most significant first) as 64 hex digits."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1))
    return packed.tobytes().hex()


def hex_to_bytes(value: str) -> bytes:
    """Validate a PDQ hex string (BadHash saying why) and return its 32 bytes."""
    return bytes.fromhex(PDQ.normalise(value))


def hamming(a: str, b: str) -> int:
    """Bits that differ between two PDQ hex strings."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _pixels(image: Image.Image) -> np.ndarray:
    """The image's pixels as (rows, cols, 4) uint8, RGB and Pillow's padding byte: a
    copy of Pillow's own layout, 2.4x cheaper than packing them to three bytes
    (`np.asarray`); PDQ reads the first three channels alone."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    return np.frombuffer(rgb.tobytes("raw", "RGBX"), np.uint8).reshape(height, width, 4)


def pdq_of_pixels(pixels: np.ndarray) -> PdqHash:
    """PDQ of (rows, cols, 3) uint8 pixels (or (rows, cols, 4), RGBX: the fourth
    channel is not read)."""
    packed, quality = pdq_hasher.compute(pixels)
    return PdqHash(packed.hex(), quality)


def pdq_dihedral_of_pixels(pixels: np.ndarray) -> list[PdqHash]:
    """PDQ of (rows, cols, 3 or 4) uint8 pixels and their seven rotations/flips (order of
    `DIHEDRAL`)."""
    all_packed, quality = pdq_hasher.compute_dihedral(pixels)
    return [PdqHash(packed.hex(), quality) for packed in all_packed]


def pdq(image: Image.Image) -> PdqHash:
    """PDQ of an image (converted to RGB first)."""
    return pdq_of_pixels(_pixels(image))


def pdq_dihedral(image: Image.Image) -> list[PdqHash]:
    """PDQ of the image and its seven rotations/flips (order of `DIHEDRAL`)."""
    return pdq_dihedral_of_pixels(_pixels(image))
