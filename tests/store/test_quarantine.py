"""The evidence store: encrypted, atomic (SIGKILL-tested), expiring, exportable."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from warden.domain.verdict import Decision, Reason, Verdict
from warden.errors import ConfigError, EvidenceError
from warden.store.quarantine import (
    EvidenceStore,
    decode_key,
    decrypt_export,
    generate_key,
    key_file_key,
    should_preserve,
)


def _store(tmp_path: Path, key: bytes | None = None) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence", key or decode_key(generate_key()), 365)


def test_items_are_encrypted_and_read_back(tmp_path):
    store = _store(tmp_path)
    media = b"\xff\xd8 pretend jpeg bytes " * 100
    item_id = store.preserve(media, {"sha256": "ab" * 32, "source": "upload", "uploader": "u"})
    raw = (store.root / f"{item_id}.wev").read_bytes()
    assert media[:20] not in raw and b"upload" not in raw
    assert store.media(item_id) == media
    item = store.show(item_id)
    assert item.metadata["uploader"] == "u" and item.metadata["evidence_id"] == item_id
    assert [i.id for i in store.items()] == [item_id]
    assert oct((store.root / f"{item_id}.wev").stat().st_mode & 0o777) == "0o600"


def test_a_wrong_key_or_tampered_file_is_refused(tmp_path):
    store = _store(tmp_path)
    item_id = store.preserve(b"data", {"source": "upload"})
    other = EvidenceStore(store.root, decode_key(generate_key()))
    with pytest.raises(EvidenceError, match="does not decrypt"):
        other.show(item_id)
    path = store.root / f"{item_id}.wev"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(EvidenceError, match="media does not decrypt"):
        store.media(item_id)
    with pytest.raises(EvidenceError, match="no evidence item"):
        store.show("20200101T000000Z-000000000000")


def test_prune_deletes_only_expired_items(tmp_path):
    store = EvidenceStore(tmp_path / "ev", decode_key(generate_key()), retention_days=30)
    now = datetime.now(UTC)
    old = store.preserve(b"old", {}, now=now - timedelta(days=31))
    new = store.preserve(b"new", {}, now=now - timedelta(days=29))
    assert store.prune(now) == [old]
    assert store.ids() == [new]


def test_export_makes_a_report_package_with_a_one_time_key(tmp_path):
    store = _store(tmp_path)
    item_id = store.preserve(b"media bytes", {"sha256": "cd" * 32, "decision": "reject"})
    folder, key = store.export(item_id, tmp_path / "out")
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["sha256"] == "cd" * 32 and meta["decision"] == "reject"
    assert key not in (folder / "metadata.json").read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["media.bin", "metadata.json"]
    assert decrypt_export(folder, key) == b"media bytes"


def test_keys_are_checked_and_the_default_is_generated_once(tmp_path, caplog):
    with pytest.raises(ConfigError, match="32 bytes"):
        decode_key("c2hvcnQ=")
    with pytest.raises(ConfigError, match="base64"):
        decode_key("not base64 at all!")
    first = key_file_key(tmp_path)
    assert "EVIDENCE KEY GENERATED" in caplog.text
    assert oct((tmp_path / "evidence.key").stat().st_mode & 0o777) == "0o600"
    assert key_file_key(tmp_path) == first


def test_only_label_and_hash_refusals_are_preserved():
    def verdict(decision: Decision, code: str) -> Verdict:
        return Verdict(decision, (Reason(code, "m", MappingProxyType({})),), "ab" * 32, 1)

    assert should_preserve(verdict(Decision.REJECT, "label_reject"))
    assert should_preserve(verdict(Decision.REJECT, "hash_match"))
    assert should_preserve(verdict(Decision.REJECT, "scanner_reject"))  # PhotoDNA, pictrs-safety
    assert not should_preserve(verdict(Decision.REJECT, "scanner_unavailable"))
    assert not should_preserve(verdict(Decision.REJECT, "corrupt_media"))
    assert not should_preserve(verdict(Decision.REJECT, "scan_timeout"))
    assert not should_preserve(verdict(Decision.REVIEW, "label_review"))


WRITER = """
import sys
from pathlib import Path
from warden.store.quarantine import EvidenceStore, decode_key
store = EvidenceStore(Path(sys.argv[1]), decode_key(sys.argv[2]))
payload = bytes(range(256)) * 4096  # 1 MiB: long enough to be killed mid-write
print("ready", flush=True)
i = 0
while True:
    store.preserve(payload, {"n": i})
    i += 1
"""


def test_a_killed_writer_leaves_whole_items_or_nothing(tmp_path):
    key = generate_key()
    root = tmp_path / "evidence"
    rng = random.Random(7)
    for _ in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), key],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    store = EvidenceStore(root, decode_key(key))
    ids = store.ids()
    assert ids, "the writer wrote nothing before being killed"
    for item_id in ids:
        assert not item_id.startswith(".")
        assert store.media(item_id) == bytes(range(256)) * 4096
    assert all(p.name.endswith(".wev") or p.name.startswith(".tmp-") for p in root.iterdir())
