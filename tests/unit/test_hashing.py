"""PDQ and SHA-256: agreement with pdqhash on the same pixels and with Meta's references;
Warden's own extra hashes (borders trimmed, normalised) and keypoints."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps
from skimage import data as photos

from tests.conftest import gradient
from warden.media import hashing, keypoints, pdq_hasher, variants
from warden.media.decode import DecodeLimits, Frame, decode


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


# -- the compiled PDQ (media/pdq_hasher.py) against pdqhash, bit for bit ----------------


def _photos() -> list[Image.Image]:
    names = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")
    return [Image.fromarray(getattr(photos, n)()) for n in names]


def _bank_of_pictures() -> list[Image.Image]:
    """Photos at the scanner's sizes, camera sizes, powers of two, tiny, thin and odd
    sizes (every Jarosz window from 1 up, decimation sampling rows twice below 64 px,
    64 x 64 where the single hash skips the filter), noise, flat and near-flat pictures,
    and grey, RGBA and palette modes."""
    rng = np.random.default_rng(12)
    sizes = (
        (640, 480), (800, 600), (1024, 683), (1024, 1024), (2048, 1536), (64, 64),
        (65, 63), (5, 5), (5, 400), (400, 5), (7, 9), (127, 129), (128, 128), (333, 211),
    )  # fmt: skip
    out = [photo.convert("RGB").resize(size) for photo in _photos() for size in sizes[:6]]
    out += [_photos()[i % 6].convert("RGB").resize(size) for i, size in enumerate(sizes[6:])]
    out += [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((480, 640), (31, 97), (64, 64))
    ]
    out += [
        Image.new("RGB", size, colour)
        for size, colour in (
            ((300, 200), (128, 128, 128)),
            ((64, 64), (0, 0, 0)),
            ((513, 257), (255, 255, 255)),
        )
    ]
    near_flat = np.full((240, 320, 3), 100, np.uint8) + rng.integers(
        0, 2, (240, 320, 3), dtype=np.uint8
    )
    out.append(Image.fromarray(near_flat))
    photo = _photos()[1].resize((500, 333))
    out += [
        photo.convert("L"),
        photo.convert("RGBA"),
        photo.convert("P"),
        photo.convert("LA"),
        photo.convert("CMYK"),
    ]
    out.append(Image.fromarray(rng.integers(0, 256, (200, 300), dtype=np.uint8), "L"))
    return out


def _reference_hex(bits: object) -> str:
    return hashing.bits_to_hex(np.asarray(bits))


def test_compiled_pdq_is_pdqhash_bit_for_bit_on_every_kind_of_picture():
    pictures = _bank_of_pictures()
    assert len(pictures) > 50
    for picture in pictures:
        rgb = np.asarray(picture.convert("RGB"))
        what = f"{picture.mode} {picture.size}"
        bits, quality = pdqhash.compute(rgb)
        ours = hashing.pdq(picture)
        assert (ours.hex, ours.quality) == (_reference_hex(bits), quality), what
        all_bits, quality = pdqhash.compute_dihedral(rgb)
        dihedral = hashing.pdq_dihedral(picture)
        assert [h.hex for h in dihedral] == [_reference_hex(b) for b in all_bits], what
        assert {h.quality for h in dihedral} == {quality}, what


def test_compiled_pdq_takes_any_strides_and_refuses_what_is_not_rgb_bytes():
    rgb = np.asarray(_photos()[0].resize((300, 200)))
    for view in (rgb[::2, ::3], rgb[:, ::-1], np.asfortranarray(rgb), rgb[10:150, 20:260]):
        bits, quality = pdqhash.compute(np.ascontiguousarray(view))
        packed, ours = pdq_hasher.compute(view)
        assert (packed.hex(), ours) == (_reference_hex(bits), quality)
    for bad in (rgb.astype(np.float32), rgb[..., 0], np.zeros((10, 10, 2), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            pdq_hasher.compute(bad)


def test_rgbx_pixels_hash_as_their_rgb_whatever_the_fourth_byte():
    """Frames travel and are hashed as RGBX (Pillow's own layout, a plain copy): the
    fourth byte is never read, so the hashes are pdqhash's of the RGB pixels."""
    for picture in _photos()[:3]:
        rgb = np.asarray(picture.convert("RGB"))
        rgbx = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
        noise = rgbx.copy()
        noise[..., 3] = np.random.default_rng(5).integers(0, 256, rgb.shape[:2])
        bits, quality = pdqhash.compute(rgb)
        all_bits, _ = pdqhash.compute_dihedral(rgb)
        for pixels in (rgbx, noise):
            packed, ours = pdq_hasher.compute(pixels)
            assert (packed.hex(), ours) == (_reference_hex(bits), quality)
            dihedral, _ = pdq_hasher.compute_dihedral(pixels)
            assert [p.hex() for p in dihedral] == [_reference_hex(b) for b in all_bits]


def test_tiny_pictures_get_the_zero_hash_as_in_the_reference():
    for size in ((4, 4), (4, 100), (100, 4), (1, 1)):
        rgb = np.asarray(Image.new("RGB", size, (200, 10, 10)))
        bits, quality = pdqhash.compute(rgb)
        assert (
            (hashing.pdq_of_pixels(rgb).hex, 0) == (_reference_hex(bits), quality) == ("0" * 64, 0)
        )


# -- Warden's own extra hashes (media/variants.py) and keypoints -----------------------


def test_uniform_borders_are_trimmed_to_the_pixel():
    inner = gradient(400, 300, seed=2)
    for colour in ((255, 255, 255), (0, 0, 0), (242, 242, 245)):
        framed = ImageOps.expand(inner, (40, 30, 60, 20), fill=colour)
        assert variants.trim_box(framed) == (40, 30, 440, 330), colour


def test_a_caption_bar_with_text_is_trimmed():
    inner = gradient(400, 300, seed=4)
    out = Image.new("RGB", (400, 360), (255, 255, 255))
    out.paste(inner, (0, 60))
    font = ImageFont.load_default(size=20)
    ImageDraw.Draw(out).text((20, 18), "when you see it", fill=(0, 0, 0), font=font)
    assert variants.trim_box(out) == (0, 60, 400, 360)


def test_pictures_without_a_border_are_left_alone():
    assert variants.trim_box(gradient(seed=1)) is None
    thin = ImageOps.expand(gradient(400, 300, seed=1), 2, fill=(255, 255, 255))
    assert variants.trim_box(thin) is None, "a 2 px line is the picture's edge"
    tiny = Image.new("RGB", (400, 400), (255, 255, 255))
    tiny.paste(gradient(60, 60, seed=1), (170, 170))
    assert variants.trim_box(tiny) is None, "never trimmed down to a sliver"
    assert variants.trim_box(Image.new("RGB", (10, 10))) is None


def test_extra_hashes_are_the_same_on_both_sides_and_never_replace_plain_pdq():
    inner = gradient(400, 300, seed=5)
    framed = ImageOps.expand(inner, 50, fill=(255, 255, 255))
    kinds = [e.kind for e in variants.extra_hashes(framed)]
    assert kinds == ["normalised", "trimmed"]
    assert [e.kind for e in variants.extra_hashes(inner)] == ["normalised"]
    trimmed = variants.extra_hashes(framed)[1]
    assert hashing.hamming(trimmed.pdq.hex, variants.extra_hashes(inner)[0].pdq.hex) <= 8
    assert variants.robust_frames([Frame(0, framed)])[1].variants == (), "the plain hash turns"
    # the plain PDQ stays pdqhash's, bit for bit
    bits, _ = pdqhash.compute(np.asarray(framed))
    assert hashing.pdq(framed).hex == hashing.bits_to_hex(bits)


def test_robust_frames_describe_the_first_frame_only():
    frames = [Frame(0, gradient(seed=1)), Frame(5, gradient(seed=2))]
    extra = variants.robust_frames(frames)
    assert {f.frame for f in extra} == {0}
    # the query adds its top- and bottom-cut hashes; the bank side does not
    banked = variants.robust_frames(frames, query=False)
    assert len(extra) == len(banked) + 2
    assert {f.pdq for f in banked} <= {f.pdq for f in extra}
    assert variants.robust_frames([]) == ()


def test_keypoints_find_a_crop_and_nothing_in_a_flat_picture():
    photo = gradient(512, 384, seed=3)
    index = keypoints.KeypointIndex()
    index.add(7, photo)
    crop = photo.crop((40, 30, 470, 350))
    assert [m.entry for m in index.match(crop)] == [7]
    flat = Image.new("RGB", (300, 300), (90, 90, 90))
    assert len(keypoints.features(flat)) == 0
    assert index.match(flat) == []
    index.remove(7)
    assert len(index) == 0 and index.match(crop) == []
