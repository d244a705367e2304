"""Shared fixtures: generated images, the real model (loaded once), settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from warden.config import Settings, load_settings
from warden.media.classify import NudeNetClassifier

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def gradient(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """An ordinary-looking synthetic picture: gradients, shapes and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    r = (x / width * 255).astype(np.uint8)
    g = (y / height * 255).astype(np.uint8)
    b = ((np.sin(x / 23.0 + seed) + np.cos(y / 17.0)) * 60 + 128).astype(np.uint8)
    arr = np.stack([r, g, b], axis=2)
    arr = np.clip(arr.astype(int) + rng.integers(-12, 12, arr.shape), 0, 255).astype(np.uint8)
    cy, cx = height // 2, width // 3
    arr[cy - 40 : cy + 40, cx - 60 : cx + 60] = (20 + seed * 30 % 200, 200, 80)
    return Image.fromarray(arr, "RGB")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared is missing (expected at {SHARED}); CI places it beside the clone")
    return SHARED


@pytest.fixture(scope="session")
def classifier() -> NudeNetClassifier:
    """The real bundled NudeNet model, loaded once per test session."""
    model = NudeNetClassifier(threads=2)
    model.warm_up()
    return model


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def ordinary_images() -> dict[str, Image.Image]:
    """Ordinary photographs shipped with scikit-image (no people but the astronaut)."""
    from skimage import data

    out = {}
    for name in (
        "astronaut",
        "chelsea",
        "rocket",
        "coffee",
        "hubble_deep_field",
        "immunohistochemistry",
    ):
        out[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
    return out


# -- databases: every store test runs on SQLite and on a real PostgreSQL ---------

import itertools  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from tests.servers.postgres import PostgresServer, postgres_session  # noqa: E402
from warden.store.database import Database  # noqa: E402

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server, started once for the whole test session."""
    yield from postgres_session()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warden.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"warden_test_{next(_db_counter)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()
