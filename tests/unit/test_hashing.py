"""PDQ and SHA-256: agreement with pdqhash on the same pixels and with Meta's references."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pdqhash
import pytest
from PIL import Image

from tests.conftest import gradient
from warden.media import hashing
from warden.media.decode import DecodeLimits, decode


def test_sha256_of_bytes():
    assert hashing.sha256(b"warden") == hashlib.sha256(b"warden").hexdigest()


def test_pdq_equals_pdqhash_on_the_same_pixels():
    for seed in range(4):
        img = gradient(500, 300, seed=seed)
        ours = hashing.pdq(img)
        bits, quality = pdqhash.compute(np.asarray(img))
        assert int(ours.hex, 16) == int("".join(str(int(b)) for b in bits), 2)
        assert ours.quality == quality


def test_hex_round_trip_and_hamming():
    a = hashing.pdq(gradient(seed=1)).hex
    assert hashing.hex_to_bytes(a).hex() == a
    flipped = format(int(a, 16) ^ 0b1011, "064x")
    assert hashing.hamming(a, flipped) == 3
    with pytest.raises(ValueError, match="64 hex digits"):
        hashing.hex_to_bytes("abc")


def _references(shared_dir):
    base = shared_dir / "testdata" / "pdq"
    with (base / "expected.csv").open() as fh:
        return base / "images", list(csv.DictReader(fh))


def test_pdq_matches_meta_reference_hashes(shared_dir):
    images, rows = _references(shared_dir)
    assert len(rows) > 40
    for row in rows:
        media = decode((images / row["image"]).read_bytes(), DecodeLimits())
        ours = hashing.pdq(media.frames[0].image)
        distance = hashing.hamming(ours.hex, row["pdq_hex"])
        assert distance <= 16, f"{row['image']} ({row['implementation']}): {distance} bits"


def test_bridge_mods_match_the_original_and_unrelated_images_do_not(shared_dir):
    images, _ = _references(shared_dir)

    def h(rel: str) -> str:
        return hashing.pdq(decode((images / rel).read_bytes(), DecodeLimits()).frames[0].image).hex

    original = h("bridge-mods/aaa-orig.jpg")
    for mod in sorted((images / "bridge-mods").glob("*.jpg")):
        assert hashing.hamming(original, h(f"bridge-mods/{mod.name}")) <= 31, mod.name
    for other in sorted((images / "reg-test-input" / "labelme-subset").glob("*.jpg")):
        assert hashing.hamming(original, h(f"reg-test-input/labelme-subset/{other.name}")) > 31


def test_dihedral_variants_find_every_rotation_and_flip(shared_dir):
    images, _ = _references(shared_dir)
    dih = sorted((images / "reg-test-input" / "dih").glob("*.jpg"))
    assert len(dih) == 8
    original = Image.open(dih[0]).convert("RGB")
    variants = [v.hex for v in hashing.pdq_dihedral(original)]
    for path in dih:
        plain = hashing.pdq(Image.open(path).convert("RGB")).hex
        assert min(hashing.hamming(plain, v) for v in variants) <= 31, path.name
    # without the variants, the rotations are not found
    misses = [
        p
        for p in dih
        if hashing.hamming(hashing.pdq(Image.open(p).convert("RGB")).hex, variants[0]) > 31
    ]
    assert len(misses) >= 5
