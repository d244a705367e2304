"""The keypoint stage (issue 16): pictures Warden flagged are refused again when
re-posted cropped (10 %, symmetric or one side), turned 3-5 degrees or shown as a
screenshot-like copy, where no hash matches; every other ordinary picture and its
edits passes. Features are stored with the bank entry, followed by the running
gate, dropped with the entry and reloaded after a restart.

Real parts throughout: the corpus of tests/photos.py and scikit-image's photos,
the real decoder and scanner, SQLite and PostgreSQL, the real model behind the
HTTP gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import photos
from tests.conftest import encode
from tests.servers.pictrs_internal import PictrsInternalDouble
from tests.web.gate import gate_services, gate_settings
from warden.config import load_settings
from warden.domain.banks import Bank, BankAction, BankKind
from warden.media import keypoints
from warden.media.decode import decode
from warden.media.decoder_pool import InProcessDecoder
from warden.media.keypoint_stage import HeldPicture, KeypointStage
from warden.media.pipeline import ScanContext, Scanner
from warden.services import Services
from warden.services.keypoint_sync import KeypointSync
from warden.services.scanning import decode_limits
from warden.store.banks import BankStore, NewEntry
from warden.store.database import Database
from warden.store.keypoint_features import KeypointFeatureStore
from warden.web.app import create_app

Edit = Callable[[Image.Image], Image.Image]


def crop(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * share), round(h * share)
    return image.crop((dx, dy, w - dx, h - dy))


def crop_side(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * share), 0, w, h))


def turn(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC)


def screenshot(image: Image.Image) -> Image.Image:
    """Scaled to 80 % onto a grey page, off-centre: a screenshot of a post."""
    w, h = image.size
    page = Image.new("RGB", (w, h), (236, 236, 240))
    small = image.resize((round(w * 0.8), round(h * 0.8)), Image.Resampling.LANCZOS)
    page.paste(small, (round(w * 0.12), round(h * 0.06)))
    return page


EDITS: dict[str, Edit] = {
    "crop 10 %": lambda im: crop(im, 0.10),
    "crop 10 % one side": lambda im: crop_side(im, 0.10),
    "rotate 3°": lambda im: turn(im, 3),
    "rotate 5°": lambda im: turn(im, 5),
    "screenshot": screenshot,
}


def skimage_photos() -> dict[str, Image.Image]:
    from skimage import data

    names = ("chelsea", "coffee", "rocket", "astronaut", "hubble_deep_field")
    return {n: Image.fromarray(getattr(data, n)()).convert("RGB") for n in names}


@pytest.fixture(scope="module")
def corpus() -> dict[str, Image.Image]:
    """Every picture of tests/photos.py (photographs and wallpapers) and scikit-image's."""
    return {**photos.photographs(), **photos.wallpapers(), **skimage_photos()}


#: what is flagged: every fourth photograph and two scikit-image photos
HELD = (*[Path(n).stem for n in photos.PHOTOGRAPHS[::4]], "chelsea", "coffee")


def jpeg(image: Image.Image) -> bytes:
    return encode(image, "JPEG", quality=88)


def held_features(data: bytes) -> keypoints.Features:
    """The features a flag stores: the first frame as the gate decodes it."""
    media = decode(data, decode_limits(load_settings(None)))
    return keypoints.features(media.frames[0].image)


def scanner(stage: KeypointStage) -> Scanner:
    settings = load_settings(None)
    return Scanner(
        limits=decode_limits(settings),
        policy=settings.policy.label_policy(),
        classifier=None,
        decoder=InProcessDecoder(),
        keypoints=stage,
    )


@pytest.fixture(scope="module")
def stage(corpus: dict[str, Image.Image]) -> KeypointStage:
    flag_bank = Bank(1, "local-confirmed", BankKind.PDQ)
    held = KeypointStage()
    held.set_banks([flag_bank])
    held.replace(
        HeldPicture(i, 1, f"pdq-of-{name}", held_features(jpeg(corpus[name])))
        for i, name in enumerate(HELD)
    )
    return held


def test_edits_of_held_pictures_are_refused_and_nothing_else_matches(
    corpus: dict[str, Image.Image], stage: KeypointStage
) -> None:
    scan = scanner(stage)
    missed, false = [], []
    for name, image in corpus.items():
        for edit, make in {"original": lambda im: im, **EDITS}.items():
            item = scan.prepare(jpeg(make(image)), ScanContext("upload"))
            if name in HELD:
                v = item.verdict
                if (
                    v is None
                    or v.decision != "reject"
                    or "by keypoints" not in v.reasons[0].message
                ):
                    missed.append(f"{name} {edit}")
                else:
                    [match] = v.matches
                    assert match["variant"] == "keypoints" and match["entry"] == HELD.index(name)
                    assert int(str(match["inliers"])) >= keypoints.MIN_INLIERS
            elif item.verdict is not None:
                false.append(f"{name} {edit}: {item.verdict.reasons[0].message}")
    assert not false, f"pictures nobody flagged were refused: {false}"
    assert not missed, f"edits of flagged pictures passed: {missed}"


def test_no_held_features_no_orb_call(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[object] = []
    monkeypatch.setattr("warden.media.keypoint_stage.features", called.append)
    item = scanner(KeypointStage()).prepare(
        jpeg(photos.picture(photos.PHOTOGRAPHS[1])), ScanContext()
    )
    assert item.verdict is None and called == [] and "keypoints" not in item.timings


def test_a_failing_stage_fails_closed(
    stage: KeypointStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(image: Image.Image) -> keypoints.Features:
        raise RuntimeError("out of memory")

    monkeypatch.setattr("warden.media.keypoint_stage.features", broken)
    item = scanner(stage).prepare(
        jpeg(photos.picture(photos.PHOTOGRAPHS[1])), ScanContext("upload")
    )
    assert item.verdict is not None and item.verdict.decision == "reject"
    assert item.verdict.reasons[0].code == "scan_error"
    assert "keypoint matching failed" in item.verdict.reasons[0].message


def test_the_candidate_tables_find_what_brute_force_finds(
    corpus: dict[str, Image.Image],
) -> None:
    """Every picture held (61): for two edits of each (every edit kind taken by a fifth
    of them, twice over), the multi-index candidates and the brute-force vote over all
    held descriptors verify the same pictures."""
    index = keypoints.KeypointIndex()
    names = list(corpus)
    index.update({i: held_features(jpeg(corpus[n])) for i, n in enumerate(names)}, ())
    differ = []
    kinds = list(EDITS.items())
    for i, name in enumerate(names):
        for edit, make in (kinds[i % 5], kinds[(i + 2) % 5]):
            query = held_features(jpeg(make(corpus[name])))
            fast = index._verify(index._tables, query, index.candidates(query))
            slow = index._verify(index._tables, query, index.brute_candidates(query))
            if {m.entry for m in fast} != {m.entry for m in slow}:
                differ.append(f"{name} {edit}: {fast} vs {slow}")
            found = {m.entry for m in fast}
            assert found <= {i}, f"{name} {edit} matched another picture: {fast}"
    assert not differ, differ


# -- the store and the follower: SQLite and PostgreSQL --------------------------


def flag_picture(store: BankStore, data: bytes, bank: str = "local-confirmed") -> int:
    """Bank a picture as `warden flag` does (jobs/flag.py) and keep its features."""
    from warden.jobs.flag import first_frame_features
    from warden.media import hashing

    media = decode(data, decode_limits(load_settings(None)))
    pdq = hashing.pdq_dihedral(media.frames[0].image)[0].hex
    store.ensure_bank(bank, BankKind.PDQ, BankAction.REJECT, "")
    store.add(bank, [NewEntry(pdq, "test", "admin", "wave")])
    [entry] = [e for e in store.lookup(pdq) if e.bank == bank]
    found = first_frame_features(media)
    assert found is not None
    KeypointFeatureStore(store.db).save(
        entry.id, hashing.sha256(data), found.points, found.descriptors
    )
    return entry.id


def test_features_follow_the_entry_on_both_databases(database: Database) -> None:
    store = BankStore(database)
    features = KeypointFeatureStore(database)
    stage = KeypointStage()
    sync = KeypointSync(features, store, stage)
    assert sync.load() == 0 and not stage.active

    photo = photos.picture(photos.PHOTOGRAPHS[0])
    data = jpeg(photo)
    entry = flag_picture(store, data)
    assert sync.refresh() == 1 and stage.held() == {entry}
    [row] = features.live()
    assert row.points.dtype == np.float32 and row.descriptors.shape == (len(row.points), 32)
    edited = jpeg(crop(photo, 0.1))
    assert [m.entry_id for m in scanner(stage).prepare(edited, ScanContext()).matches] == [entry]

    # stored once: flagging the same file again keeps one row
    from warden.media.hashing import sha256

    assert features.save(entry, sha256(data), row.points, row.descriptors) is False
    assert features.count() == 1
    store.remove("local-confirmed", [str(entry)], by="admin", reason="false positive")
    sync.refresh()
    assert stage.held() == set() and scanner(stage).prepare(edited, ScanContext()).verdict is None

    # re-activated: the features come back from the table
    store.add("local-confirmed", [NewEntry(row.value, "test", "admin", "again")])
    sync.refresh()
    assert stage.held() == {entry}

    # a restart (a new process) loads them from the database
    fresh = KeypointStage()
    assert KeypointSync(features, store, fresh).load() == 1 and fresh.held() == {entry}

    # deleting the bank deletes its entries and, with them, the features
    store.delete_bank("local-confirmed")
    sync.refresh()
    assert stage.held() == set() and features.count() == 0


# -- through the gate over HTTP: the console's flag, without a restart ------------


@pytest.fixture
def built() -> Iterator[Callable[..., Services]]:
    """`gate_services`, each one's decoder processes and database closed afterwards."""
    made: list[Services] = []

    def make(*args: object) -> Services:
        services = gate_services(*args)  # type: ignore[arg-type]
        made.append(services)
        return services

    yield make
    for services in made:
        services.scanner.close()
        services.database.dispose()


@pytest.fixture
def pictrs() -> Iterator[PictrsInternalDouble]:
    double = PictrsInternalDouble(api_key="pictrs-key")
    double.__enter__()
    yield double
    double.__exit__()


async def test_a_flag_bites_in_the_running_gate_and_survives_a_restart(
    tmp_path: Path, db_url: str, classifier, built, pictrs: PictrsInternalDouble
) -> None:
    settings = gate_settings(
        tmp_path,
        db_url,
        pictrs={"url": pictrs.url, "api_key": "pictrs-key"},
        banks={"refresh_s": 3600},  # nothing but the flag itself may bring it in
    )
    services = built(settings, classifier)
    photo = photos.picture(photos.PHOTOGRAPHS[5])
    original = jpeg(photo)
    pictrs.add(original, "original.jpg")  # what Lemmy stored after the gate let it in
    copies = {edit: jpeg(make(photo)) for edit, make in EDITS.items()}
    others = [jpeg(photos.picture(n)) for n in (*photos.PHOTOGRAPHS[6:9], photos.WALLPAPERS[0])]

    async def post(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
        return await client.post(
            "/pictrs/validate", content=data, headers={"Content-Type": "image/jpeg"}
        )

    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
            assert (await post(client, original)).status_code == 200
            decision = services.decisions.recent(limit=1)[0]  # type: ignore[union-attr]
            assert (await post(client, copies["crop 10 %"])).status_code == 200

            # the console's flag of that decision (its bank step), picture from pict-rs
            assert services.console is not None
            result = await services.console.service.chain.run(
                decision.id, actor="admin", reason="attack wave", steps=("bank",)
            )
            assert result.ok and "keypoints kept" in result.steps[0].detail

            for edit, data in copies.items():
                answer = await post(client, data)
                assert answer.status_code == 422, edit
                body = answer.json()
                assert body["error"] == "hash_match", (edit, body)
                if edit != "screenshot":  # that one Warden's trimmed hashes may find first
                    assert "by keypoints" in body["message"], (edit, body)
            for other in others:
                assert (await post(client, other)).status_code == 200

    # logged with the inlier count, and preserved like any bank match
    refused = services.decisions.recent(limit=len(others) + len(copies))[len(others) :]  # type: ignore[union-attr]
    by_keypoints = [r for r in refused if r.verdict.matches[0]["variant"] == "keypoints"]
    assert len(by_keypoints) >= 4
    for record in by_keypoints:
        assert int(record.verdict.matches[0]["inliers"]) >= 20  # type: ignore[call-overload]
        reason = record.verdict.reasons[0]
        assert "by keypoints" in reason.message and "matching points" in reason.message
        assert record.evidence_id is not None  # preserved like any bank match

    # a restart: a new process loads the features from the database
    again = built(settings, classifier)
    app = create_app(settings, again)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://warden") as client:
            assert (await post(client, copies["rotate 5°"])).status_code == 422
            # the entry removed (an admin's mistake undone): it stops matching at once
            store = BankStore(again.database)
            store.remove(
                settings.banks.flag_bank,
                [decision.verdict.frames[0].pdq],
                by="admin",
                reason="undo",
            )
            assert again.banks is not None
            again.banks.refresh()
            assert (await post(client, copies["rotate 5°"])).status_code == 200
