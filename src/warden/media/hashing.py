"""Hashes of media: SHA-256 of the exact bytes, PDQ of what the pixels look like.

SHA-256 finds the very same file again; PDQ (Meta's perceptual hash, through
the `pdqhash` package) finds it after resizing or recompression. Hex strings
follow ThreatExchange's convention (the first hash bit is the most significant
bit of the first hex digit), so hashes exchange with HMA and industry lists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pdqhash
from PIL import Image

from warden.domain.signals import PDQ

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
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


def pdq(image: Image.Image) -> PdqHash:
    """PDQ of an RGB image."""
    bits, quality = pdqhash.compute(_pixels(image))
    return PdqHash(bits_to_hex(bits), int(quality))


def pdq_dihedral(image: Image.Image) -> list[PdqHash]:
    """PDQ of the image and its seven rotations/flips (order of `DIHEDRAL`)."""
    all_bits, quality = pdqhash.compute_dihedral(_pixels(image))
    return [PdqHash(bits_to_hex(bits), int(quality)) for bits in all_bits]
