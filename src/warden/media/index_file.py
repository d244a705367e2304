"""The built bank index on disk, so that a start opens it instead of rebuilding it.

At 10 million PDQ hashes the index takes ~20 s to build and ~0.9 GB; saved as
plain `.npy` arrays it opens memory-mapped in milliseconds, and the pages the
queries touch are read from the page cache, shared by every process on the
host (`warden serve` and each `warden hashes match`).

A saved index is one folder: `manifest.json` (format, the bank change-log
marks it is current to, each bank's kind, threshold, size and files) and the
arrays. It is written atomically: arrays under new names first (0600 in a 0700
folder, fsynced), then the manifest by rename, then the files the old manifest
named are deleted. A reader that finds anything missing, truncated or
inconsistent uses nothing from it (`read` returns None) and the caller builds
from the database as before: a bad file costs time, never a wrong answer.

Pure file handling: which marks and banks make a saved index current is the
caller's business (services/bank_sync.py compares them with the database).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
ORPHAN_AGE_S = 3600  # a file no manifest names is deleted once this old
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SavedBank:
    """One bank as saved: what it was built for, and its arrays (memory-mapped)."""

    kind: str
    threshold: int
    size: int
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True)
class SavedIndex:
    """A saved index: the change-log marks it is current to and its banks by id."""

    entry_mark: int
    event_mark: int
    source: str  # which database it was built from (a digest of its URL)
    banks: dict[int, SavedBank]


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def _write_private(path: Path, write: Any) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write(
    folder: Path,
    *,
    entry_mark: int,
    event_mark: int,
    source: str,
    banks: dict[int, tuple[str, int, dict[str, np.ndarray]]],
) -> None:
    """Save banks ({id: (kind, threshold, arrays)}) current to these marks, atomically."""
    _private_dir(folder)
    old = _manifest(folder)
    tag = secrets.token_hex(4)
    described: dict[str, Any] = {}
    for bank_id, (kind, threshold, arrays) in banks.items():
        files = {}
        for name, array in arrays.items():
            file = f"bank{bank_id}-{tag}-{name}.npy"
            _write_private(
                folder / file, lambda f, a=array: np.save(f, np.ascontiguousarray(a), False)
            )
            files[name] = file
        size = len(arrays["ids"])
        described[str(bank_id)] = {
            "kind": kind,
            "threshold": threshold,
            "size": size,
            "files": files,
        }
    manifest = {
        "format": FORMAT,
        "entry_mark": entry_mark,
        "event_mark": event_mark,
        "source": source,
        "banks": described,
    }
    tmp = folder / f".{MANIFEST}.{tag}"
    _write_private(tmp, lambda f: f.write(json.dumps(manifest).encode()))
    os.replace(tmp, folder / MANIFEST)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    keep = {f for b in described.values() for f in b["files"].values()}
    for bank in (old or {}).get("banks", {}).values():
        for file in bank.get("files", {}).values():
            if file not in keep:
                (folder / file).unlink(missing_ok=True)
    # files of a writer that lost a race (its manifest was replaced by this one) or
    # died half-way: named by no manifest, and old enough to be finished with
    cutoff = time.time() - ORPHAN_AGE_S
    for path in folder.glob("bank*-*.npy"):
        try:
            if path.name not in keep and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("saved bank index %s unreadable (%s); it will be rebuilt", folder, exc)
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def read(folder: Path) -> SavedIndex | None:
    """The saved index, its arrays memory-mapped read-only; None when there is none
    or any part of it is missing or does not fit."""
    manifest = _manifest(folder)
    if manifest is None:
        return None
    try:
        banks = {}
        for key, bank in manifest["banks"].items():
            arrays = {
                name: np.load(folder / file, mmap_mode="r", allow_pickle=False)
                for name, file in bank["files"].items()
            }
            if len(arrays["ids"]) != int(bank["size"]):
                raise ValueError(
                    f"bank {key}: {len(arrays['ids'])} ids, manifest says {bank['size']}"
                )
            banks[int(key)] = SavedBank(
                str(bank["kind"]), int(bank["threshold"]), int(bank["size"]), arrays
            )
        return SavedIndex(
            int(manifest["entry_mark"]), int(manifest["event_mark"]), str(manifest["source"]), banks
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("saved bank index %s unusable (%s); it will be rebuilt", folder, exc)
        return None
