"""PDQ banks recognise ordinary pictures after everyday edits, and only those.

Each derived image is made here from scikit-image's photographs (resize 50%,
JPEG quality 40, a crop, a small text overlay, rotation, mirror); it goes
through the real scanner (decode, dihedral PDQ) and the real matcher against
a bank holding the originals.

Plain PDQ is known to be sensitive to cropping: on these photographs a crop of
1% a side moves 18-22 bits, 2.5% a side 42-60 bits and 5% a side 86-132 bits
(far past the threshold of 31). The tests pin both sides of that limit, so a
change in hashing that moved it would be seen.

Issue 16's goals are asserted on the robustness corpus (`robustness_corpus`: 36
photographs and 3 textures, 15 edit kinds, every distinct pair, 23,712 per way of
matching), per kind of bank:

- hash-only banks (NCMEC lists, feeds: plain PDQ banked; the scan adds Warden's own
  trimmed and normalised hashes): resizes to 25 %, JPEG q30, rotations by 90 degrees
  and mirror images, white borders, black padding, screenshot-like copies and caption
  bars. Not crops of 5 % or more, nor small rotations: no hash of the query brings
  back what the edit took away.
- media Warden holds (flagged files, preserved evidence: its own hashes banked too,
  and ORB keypoints verified by RANSAC): every goal, crops and 3-5 degree turns
  included.
- neither finds a photograph in another one: no false pair.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from tests.banks import robustness_corpus as rc
from tests.conftest import encode, gradient
from warden.config import load_settings
from warden.domain.banks import Bank, BankAction, BankKind
from warden.domain.policy import LabelPolicy
from warden.jobs import flag as flag_job
from warden.media import hashing, keypoints, variants
from warden.media.decode import DecodeLimits, decode
from warden.media.matcher import BankMatcher
from warden.media.pipeline import Prepared, ScanContext, Scanner
from warden.store.banks import BankStore
from warden.store.database import Database
from warden.store.decisions import DecisionLog

PHOTOS = ("chelsea", "rocket", "coffee", "astronaut", "hubble_deep_field")


def _resize(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)


def _jpeg40(img: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(encode(img, "JPEG", quality=40))).convert("RGB")


def _crop(img: Image.Image, side: float = 0.01) -> Image.Image:
    dx, dy = int(img.width * side), int(img.height * side)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


def _text(img: Image.Image) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).text((10, 10), "repost @someone", fill=(255, 255, 255))
    return out


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resize 50%": _resize,
    "jpeg q40": _jpeg40,
    "crop 1% a side (4% of the pixels)": _crop,
    "text overlay": _text,
    "rotate 90": lambda im: im.rotate(90, expand=True),
    "mirror": ImageOps.mirror,
}


def _scanner(matcher: BankMatcher) -> Scanner:
    return Scanner(limits=DecodeLimits(), policy=LabelPolicy(()), classifier=None, matcher=matcher)


def _prepare(scanner: Scanner, img: Image.Image) -> Prepared:
    return scanner.prepare(encode(img, "PNG"), ScanContext("upload"))


@pytest.fixture(scope="module")
def banked(ordinary_images):
    """A matcher whose PDQ bank holds the original photographs (entry id = index)."""
    matcher = BankMatcher()
    bank = Bank(1, "known", BankKind.PDQ, BankAction.REJECT)
    matcher.set_banks([bank])
    probe = _scanner(BankMatcher())
    originals = [_prepare(probe, ordinary_images[name]).frames[0].pdq for name in PHOTOS]
    matcher.bulk_load(1, list(enumerate(originals)))
    return matcher


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("photo", PHOTOS)
def test_an_edited_photo_matches_its_original(banked, ordinary_images, photo, edit):
    item = _prepare(_scanner(banked), EDITS[edit](ordinary_images[photo]))
    assert item.verdict is not None, "a bank match decides before the classifier"
    assert item.verdict.decision == "reject"
    match = item.matches[0]
    assert match.as_dict()["entry"] == PHOTOS.index(photo)
    assert match.as_dict()["distance"] <= 31
    assert item.verdict.reasons[0].code == "hash_match"
    assert "bank 'known'" in item.verdict.reasons[0].message
    if edit in ("rotate 90", "mirror"):
        assert match.as_dict()["variant"] != "original"


def test_a_five_percent_crop_a_side_is_beyond_pdq(banked, ordinary_images):
    """The documented limit: heavy crops need another hash (or the classifier)."""
    for photo in ("chelsea", "rocket", "coffee"):
        item = _prepare(_scanner(banked), _crop(ordinary_images[photo], 0.05))
        assert item.matches == ()


def test_different_photos_do_not_match(banked, ordinary_images):
    others = [ordinary_images["immunohistochemistry"], gradient(seed=3), gradient(seed=11)]
    for img in others:
        item = _prepare(_scanner(banked), img)
        assert item.matches == () and item.verdict is None


def test_flat_pictures_are_below_the_quality_floor(ordinary_images):
    """A flat image has a meaningless PDQ: banked or not, it is never matched on PDQ."""
    flat = Image.new("RGB", (400, 300), (120, 120, 120))
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "known", BankKind.PDQ)])
    frame = _prepare(_scanner(BankMatcher()), flat).frames[0]
    assert frame.quality < 50
    matcher.bulk_load(1, [(1, frame.pdq)])
    assert _prepare(_scanner(matcher), flat).matches == ()


def test_allow_bank_overrides_a_reject_bank(ordinary_images):
    img = ordinary_images["chelsea"]
    pdq = _prepare(_scanner(BankMatcher()), img).frames[0].pdq
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "bad", BankKind.PDQ), Bank(2, "fp", BankKind.PDQ, BankAction.ALLOW)])
    matcher.bulk_load(1, [(10, pdq)])
    item = _prepare(_scanner(matcher), img)
    assert item.verdict is not None and item.verdict.decision == "reject"
    matcher.add(2, [(20, pdq)])
    item = _prepare(_scanner(matcher), img)
    assert item.verdict is not None and item.verdict.decision == "accept"
    assert {m.as_dict()["bank"] for m in item.matches} == {"bad", "fp"}


def test_sha256_bank_matches_exact_bytes_only(ordinary_images):
    data = encode(ordinary_images["rocket"], "PNG")
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "exact", BankKind.SHA256)])
    scanner = _scanner(matcher)
    sha = scanner.prepare(data, ScanContext("upload")).sha256
    matcher.add(1, [(5, sha)])
    hit = scanner.prepare(data, ScanContext("upload"))
    assert [m.as_dict()["entry"] for m in hit.matches] == [5]
    assert scanner.prepare(data + b"\0", ScanContext("upload")).matches == ()
    matcher.remove(1, [5])
    assert scanner.prepare(data, ScanContext("upload")).matches == ()


def test_threshold_change_rebuilds_the_index(ordinary_images):
    img = ordinary_images["coffee"]
    pdq = _prepare(_scanner(BankMatcher()), img).frames[0].pdq
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "known", BankKind.PDQ)])
    matcher.bulk_load(1, [(1, pdq)])
    jpeg = _jpeg40(_resize(img))
    distance = _prepare(_scanner(matcher), jpeg).matches[0].as_dict()["distance"]
    assert isinstance(distance, int) and distance > 0
    matcher.set_banks([Bank(1, "known", BankKind.PDQ, pdq_threshold=distance - 1)])
    assert _prepare(_scanner(matcher), jpeg).matches == ()
    assert matcher.size(1) == 1


# -- issue 16: robustness goals on the corpus --------------------------------------

#: What hash-only banks (plain PDQ banked) reach on the corpus, per edit kind: the goals
#: of issue 16 that hold for them, measured at 100 % unless said.
HASH_ONLY_GOALS = {
    "resize 50%": 0.99,
    "resize 25%": 0.99,
    "jpeg q30": 0.99,
    # plain PDQ's own eight orientations: one photograph (GreenMeadow) turns 34 bits away
    # (97 %); Warden's extra hashes have no orientations of their own (one lookup each)
    "rotate 90": 0.95,
    "mirror": 0.95,
    "white border 10%": 0.95,
    # exact trimming (media/variants.py `borders`) takes the padding and leaves a dark
    # photograph's own black sky (hubble_deep_field, retina, seeding: 86 % before it)
    "black padding 20%": 0.95,
    "screenshot 80% on canvas": 0.95,
    "caption bar": 0.90,
}


def _plain_bank(image: Image.Image) -> rc.Hashes:
    h = hashing.pdq(image)
    return [(h.quality, [h.hex])]


def _plain_query(image: Image.Image) -> rc.Hashes:
    hs = hashing.pdq_dihedral(image)
    return [(hs[0].quality, [h.hex for h in hs])]


def _robust_query(image: Image.Image) -> rc.Hashes:
    extra = [(e.pdq.quality, [e.pdq.hex]) for e in variants.query_hashes(image)]
    return [*_plain_query(image), *extra]


def _robust_bank(image: Image.Image) -> rc.Hashes:
    extra = [(e.pdq.quality, [e.pdq.hex]) for e in variants.extra_hashes(image)]
    return [*_plain_bank(image), *extra]


@pytest.fixture(scope="module")
def before() -> rc.Outcome:
    return rc.evaluate(_plain_bank, _plain_query)


@pytest.fixture(scope="module")
def hash_only() -> rc.Outcome:
    return rc.evaluate(_plain_bank, _robust_query)


@pytest.fixture(scope="module")
def held() -> tuple[rc.Outcome, int]:
    hashes = rc.evaluate(_robust_bank, _robust_query)
    kp, worst = rc.evaluate_keypoints()
    return rc.either(hashes, kp), worst


def test_plain_pdq_misses_borders_crops_and_turns(before):
    """The baseline the goals improve on (and proof that the corpus can fail them)."""
    for edit in ("white border 10%", "screenshot 80% on canvas", "caption bar", "crop 10% a side"):
        assert before.rate(edit) == 0.0, edit
    assert before.rate("rotate 3 deg") == 0.0
    assert before.false_pairs == []


def test_hash_only_banks_match_resized_bordered_and_screenshot_copies(hash_only, before):
    """NCMEC-style lists and feeds: resized, recompressed, turned, mirrored, bordered,
    padded, screenshot and captioned copies are found; no photograph matches another."""
    assert hash_only.pairs >= 23_000 and hash_only.false_pairs == []
    for edit, goal in HASH_ONLY_GOALS.items():
        assert hash_only.rate(edit) >= goal, (edit, hash_only.missed.get(edit))
    # textures too gain from trimming (their PDQ is weak, so not every copy is found)
    for edit in ("white border 10%", "screenshot 80% on canvas"):
        assert hash_only.rate(edit, rc.TEXTURES) > before.rate(edit, rc.TEXTURES)


def test_hash_only_banks_still_miss_crops_and_small_turns(hash_only):
    """No hash of the query can bring back what a crop took away: for NCMEC-style
    lists and feeds, crops and small rotations stay out of reach."""
    for edit in ("crop 5% a side", "crop 10% a side", "crop 10% one side", "rotate 3 deg"):
        assert hash_only.rate(edit) <= 0.1, edit


def test_media_warden_holds_meets_every_goal(held):
    """Media Warden holds (its own hashes banked, keypoints verified): every goal of
    issue 16, crops up to 10 % (symmetric or one side) and 3-5 degree turns included."""
    outcome, worst = held
    assert outcome.false_pairs == []
    for edit in rc.EDITS:
        assert outcome.rate(edit.name) >= edit.goal, (edit.name, outcome.missed.get(edit.name))
    # the threshold is set from data: well above the most inliers two distinct photos share
    assert worst * 2 < keypoints.MIN_INLIERS


# -- exact trimming and the normalised picture (media/variants.py) -----------------------


@pytest.mark.parametrize("photo", ["hubble_deep_field", "seeding_by_Clements_Engelhardt"])
def test_exact_trimming_takes_black_padding_and_leaves_a_dark_photograph_whole(photo):
    """Loose trimming takes the padding and the photograph's own dark sky with it (or,
    past TRIM_MAX_SIDE, nothing); exact trimming takes the padding to the pixel."""
    image = rc.photos()[photo]
    pad = (round(image.width * 0.2), round(image.height * 0.2))
    padded = ImageOps.expand(image, pad, fill=(0, 0, 0))
    loose, exact = variants.borders(variants.rgb_pixels(padded))
    inside = (pad[0], pad[1], pad[0] + image.width, pad[1] + image.height)
    assert exact == inside
    assert inside not in loose
    # the photograph alone: nothing exact to take, so no extra hash
    assert variants.borders(variants.rgb_pixels(image))[1] is None
    kinds = [e.kind for e in variants.extra_hashes(padded)]
    assert kinds.count("trimmed exact") == 1
    assert [e.kind for e in variants.extra_hashes(image)].count("trimmed exact") == 0


def _area_mean(pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The exact area-weighted mean of each of 64 x 64 cells of `box`, by dense weight
    matrices in float64 (an independent reckoning of what `normalised` should give)."""

    def weights(start: float, stop: float, size: int) -> np.ndarray:
        edges = np.linspace(start, stop, 65)
        lo, hi = edges[:-1, None], edges[1:, None]
        px = np.arange(size)[None, :]
        return np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0, None) / (hi - lo)

    left, top, right, bottom = box
    wy = weights(top, bottom, pixels.shape[0])
    wx = weights(left, right, pixels.shape[1])
    rows = np.tensordot(wy, pixels.astype(np.float64), axes=(1, 0))  # (64, cols, 3)
    return np.tensordot(rows, wx, axes=(1, 1)).transpose(0, 2, 1)


@pytest.mark.parametrize(
    "box", [(0, 0, 640, 448), (0, 72, 640, 480), (51, 23, 589, 401), (3, 5, 50, 40)]
)
def test_the_normalised_picture_is_the_area_mean_of_each_cell(box):
    """Whole cells (640 x 448 into 10 x 7 blocks), fractional ones, and a box smaller
    than 64 pixels (each pixel spread over several cells)."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    got = np.asarray(variants.normalised(Image.fromarray(pixels), box), dtype=np.int64)
    want = _area_mean(pixels, box)
    assert got.shape == (64, 64, 3)
    assert np.abs(got - want).max() <= 0.5 + 1e-3  # rounded to the nearest level


# -- the scanner and the flag job use them ---------------------------------------------


def _screenshot(img: Image.Image) -> Image.Image:
    return rc.EDITS[[e.name for e in rc.EDITS].index("screenshot 80% on canvas")].apply(img, 0)


def test_the_scanner_matches_a_screenshot_against_plain_pdq(banked, ordinary_images):
    shot = _screenshot(ordinary_images["coffee"])
    item = _prepare(_scanner(banked), shot)
    assert item.verdict is not None and item.verdict.decision == "reject"
    assert item.matches[0].as_dict()["entry"] == PHOTOS.index("coffee")
    # what is logged is the plain PDQ of the frame, exchangeable as before
    frame = decode(encode(shot, "PNG"), DecodeLimits()).frames[0].image
    assert item.frames[0].pdq == hashing.pdq(frame).hex
    assert len(item.frames) == 1
    plain_only = Scanner(
        limits=DecodeLimits(),
        policy=LabelPolicy(()),
        classifier=None,
        matcher=banked,
        robust_hashes=False,
    )
    assert _prepare(plain_only, shot).matches == ()


def test_flag_banks_warden_own_hashes_apart(tmp_path, ordinary_images):
    """A flagged screenshot: its plain PDQ goes to the exchangeable flag bank, its
    trimmed hash to '<flag_bank>-warden'; the picture without the canvas is then caught."""
    settings = load_settings(None, data_dir=tmp_path / "data")
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    db.upgrade()
    store = BankStore(db)
    shot = tmp_path / "shot.png"
    shot.write_bytes(encode(_screenshot(ordinary_images["rocket"]), "PNG"))
    log = DecisionLog(db)
    target = flag_job.resolve(str(shot), settings, log)
    assert target.extra
    report = flag_job.flag(
        target, settings=settings, store=store, decisions=log, by="a", reason="r"
    )
    assert report.extra_bank == "local-confirmed-warden"
    plain = {e.value for e in store.entries("local-confirmed")}
    assert plain == {f.pdq for f in target.frames}
    assert {e.value for e in store.entries("local-confirmed-warden")} <= {
        f.pdq for f in target.extra
    }

    matcher = BankMatcher()
    banks = [store.bank(name) for name in ("local-confirmed", "local-confirmed-warden")]
    matcher.set_banks(banks)
    for bank in banks:
        matcher.bulk_load(bank.id, [(e.id, e.value) for e in store.entries(bank.name)])
    original = _prepare(_scanner(matcher), ordinary_images["rocket"])
    assert [m.as_dict()["bank"] for m in original.matches] == ["local-confirmed-warden"]
    db.dispose()
