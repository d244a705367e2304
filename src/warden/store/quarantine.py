"""The evidence store: refused media kept, encrypted, for the authorities.

US law asks a provider to preserve and report CSAM, not to delete it, so media
refused for an ML label or a hash match is kept here for `retention_days`.
Each item is ONE file, `<id>.wev`::

    b"WEV1" | u32 metadata length | nonce + AES-GCM(metadata JSON) | nonce + AES-GCM(media)

with the item id as associated data, so an item cannot be swapped or edited
unnoticed. Files are written atomically (temp file in the same folder, write,
fsync, rename, fsync the folder): a crash leaves the whole item or nothing.
Temp files start with a dot and are never listed as items.

`export` makes the report package an admin hands to NCMEC or a national
hotline: `metadata.json` in the clear and `media.bin` encrypted with a fresh
one-time key that is returned to be passed on separately.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from warden.domain.verdict import Decision, Verdict
from warden.errors import ConfigError, EvidenceError

log = logging.getLogger(__name__)

MAGIC = b"WEV1"
SUFFIX = ".wev"
NONCE = 12
#: Reason codes whose media is preserved: the model, a hash bank or an external
#: scanner (PhotoDNA, pictrs-safety, …: services/external_scan.py) said so.
PRESERVED_CODES = frozenset({"label_reject", "hash_match", "scanner_reject"})


def should_preserve(verdict: Verdict) -> bool:
    """Only media refused for a label, a hash match or a scanner's verdict is evidence."""
    return verdict.decision is Decision.REJECT and any(
        code in PRESERVED_CODES for code in verdict.codes
    )


def evidence_metadata(
    verdict: Verdict,
    *,
    source: str,
    uploader: str | None,
    declared_type: str | None,
    config_version: str,
    decision_id: int | None,
    **extra: Any,
) -> dict[str, Any]:
    """What a report needs beside the media: hashes, decision, reasons, who and when.

    One shape for the gate and for rescans, so an export reads the same whichever
    path refused the media."""
    return {
        "sha256": verdict.sha256,
        "pdq": verdict.pdq,
        "size": verdict.size,
        "mime": verdict.media.mime if verdict.media else declared_type,
        "source": source,
        "uploader": uploader,
        "decision": verdict.decision.value,
        "reasons": [r.as_dict() for r in verdict.reasons],
        "labels": dict(verdict.labels),
        "matches": [dict(m) for m in verdict.matches],
        "model": verdict.model,
        "config_version": config_version,
        "decision_id": decision_id,
        **extra,
    }


def generate_key() -> str:
    """A fresh key in the form `evidence.key` expects (urlsafe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def decode_key(text: str) -> bytes:
    """The 32 key bytes, or ConfigError naming the problem."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ConfigError(f"evidence.key is not urlsafe base64: {exc}") from exc
    if len(key) != 32:
        raise ConfigError(
            f"evidence.key must decode to 32 bytes, got {len(key)}; run `warden evidence keygen`"
        )
    return key


def key_file_key(data_dir: Path) -> bytes:
    """The embedded default: `data_dir/evidence.key`, generated (0600) on first use."""
    path = data_dir / "evidence.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key() + "\n")
        log.warning(
            "EVIDENCE KEY GENERATED at %s: back it up and keep it secret; without it the "
            "preserved evidence cannot be read. Set evidence.key to manage it yourself.",
            path,
        )
    return decode_key(path.read_text())


@dataclass(frozen=True)
class EvidenceItem:
    """One preserved item's metadata (the media stays encrypted until asked for)."""

    id: str
    created_at: datetime
    metadata: Mapping[str, Any]
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that a crash leaves the old state or the new, never half."""
    tmp = path.parent / f".tmp-{path.name}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class EvidenceStore:
    """Encrypted, atomic, expiring storage of refused media. Blocking; thread-safe."""

    def __init__(self, root: Path, key: bytes, retention_days: int = 365) -> None:
        self.root = root
        self.retention = timedelta(days=retention_days)
        self._aead = AESGCM(key)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @staticmethod
    def new_id(now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"

    def _path(self, item_id: str) -> Path:
        if not item_id or "/" in item_id or item_id.startswith("."):
            raise EvidenceError(f"not an evidence id: {item_id!r}")
        return self.root / f"{item_id}{SUFFIX}"

    def _seal(self, item_id: str, part: str, data: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, data, f"{item_id}:{part}".encode())

    def _open(self, item_id: str, part: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE], blob[NONCE:], f"{item_id}:{part}".encode())
        except InvalidTag as exc:
            raise EvidenceError(
                f"evidence {item_id}: {part} does not decrypt (wrong key or damaged file)"
            ) from exc

    def preserve(
        self,
        media: bytes,
        metadata: Mapping[str, Any],
        *,
        item_id: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """Store media with its metadata; returns the item id."""
        now = now or datetime.now(UTC)
        item_id = item_id or self.new_id(now)
        meta = dict(metadata)
        meta.setdefault("created_at", now.isoformat())
        meta["evidence_id"] = item_id
        meta_blob = self._seal(item_id, "metadata", json.dumps(meta, sort_keys=True).encode())
        body = (
            MAGIC
            + struct.pack(">I", len(meta_blob))
            + meta_blob
            + self._seal(item_id, "media", media)
        )
        try:
            atomic_write(self._path(item_id), body)
        except OSError as exc:
            raise EvidenceError(f"could not write evidence {item_id}: {exc}") from exc
        return item_id

    def _read(self, item_id: str, *, media: bool) -> tuple[dict[str, Any], bytes | None, int]:
        path = self._path(item_id)
        try:
            with path.open("rb") as fh:
                head = fh.read(8)
                if len(head) != 8 or head[:4] != MAGIC:
                    raise EvidenceError(f"evidence {item_id}: not an evidence file")
                (n,) = struct.unpack(">I", head[4:])
                meta = json.loads(self._open(item_id, "metadata", fh.read(n)))
                data = self._open(item_id, "media", fh.read()) if media else None
                size = path.stat().st_size
        except FileNotFoundError as exc:
            raise EvidenceError(f"no evidence item {item_id}") from exc
        return meta, data, size

    def show(self, item_id: str) -> EvidenceItem:
        meta, _, size = self._read(item_id, media=False)
        return EvidenceItem(item_id, datetime.fromisoformat(meta["created_at"]), meta, size)

    def media(self, item_id: str) -> bytes:
        _, data, _ = self._read(item_id, media=True)
        assert data is not None
        return data

    def ids(self) -> list[str]:
        return sorted(p.name[: -len(SUFFIX)] for p in self.root.glob(f"[!.]*{SUFFIX}"))

    def items(self) -> list[EvidenceItem]:
        return [self.show(i) for i in self.ids()]

    def prune(self, now: datetime | None = None) -> list[str]:
        """Delete items older than the retention period (and stale temp files)."""
        now = now or datetime.now(UTC)
        removed = []
        for item in self.items():
            if item.created_at + self.retention <= now:
                self._path(item.id).unlink(missing_ok=True)
                removed.append(item.id)
        for tmp in self.root.glob(".tmp-*"):
            if datetime.fromtimestamp(tmp.stat().st_mtime, UTC) < now - timedelta(hours=1):
                tmp.unlink(missing_ok=True)
        if removed:
            _fsync_dir(self.root)
        return removed

    def export(self, item_id: str, dest: Path) -> tuple[Path, str]:
        """A report folder `dest/<id>/`; returns it and the one-time media key (base64)."""
        meta, data, _ = self._read(item_id, media=True)
        assert data is not None
        folder = dest / item_id
        folder.mkdir(parents=True, exist_ok=False)
        one_time = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE)
        sealed = nonce + AESGCM(one_time).encrypt(nonce, data, None)
        report = {
            **meta,
            "media_file": "media.bin",
            "media_encryption": "AES-256-GCM; 12-byte nonce, then ciphertext+tag; key given separately",
        }
        atomic_write(folder / "metadata.json", json.dumps(report, indent=2).encode(), 0o644)
        atomic_write(folder / "media.bin", sealed, 0o644)
        return folder, base64.urlsafe_b64encode(one_time).decode("ascii")


def decrypt_export(folder: Path, key: str) -> bytes:
    """Open an exported `media.bin` with its one-time key (what the recipient does)."""
    blob = (folder / "media.bin").read_bytes()
    return AESGCM(decode_key(key)).decrypt(blob[:NONCE], blob[NONCE:], None)


def open_evidence_store(data_dir: Path, key_text: str | None, retention_days: int) -> EvidenceStore:
    """The store under `data_dir/evidence` with the configured key or the embedded default."""
    key = decode_key(key_text) if key_text is not None else key_file_key(data_dir)
    return EvidenceStore(data_dir / "evidence", key, retention_days)
