"""Building a Warden for the media-gate tests: real scanner, real database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from warden.config import Settings, load_settings
from warden.media.classify import Classifier
from warden.services import Services, build_scanner, build_services
from warden.store.database import Database
from warden.store.quarantine import generate_key

#: Policy that refuses a female face: the astronaut photo (~0.73) becomes an ML
#: refusal. Not lower: NudeNet itself reads a FACE_FEMALE of 0.31 into the plain
#: `gradient()` JPEG, and Warden's scores are NudeNet's.
FACE_REJECT = {
    "policy": {"labels": {"FACE_FEMALE": {"reject": 0.5}}},
}


def gate_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database": {"url": db_url},
        "evidence": {"key": generate_key()},
        "server": {"batch_window_ms": 2.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(None, **base)


def gate_services(
    settings: Settings,
    classifier: Classifier | None,
    *,
    migrate: bool = True,
    config_path: Path | None = None,
) -> Services:
    database = Database(settings.database_url)
    if migrate:
        database.upgrade()
    scanner = build_scanner(settings, classifier=classifier)
    return build_services(settings, scanner=scanner, database=database, config_path=config_path)
