"""This instance's feed key at work: signing batches, and verifying other instances'.

The key file itself is kept by store/feeds.py (0600, never in the database).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from warden.config import Settings
from warden.domain.feeds import (
    PROTOCOL,
    FeedBatch,
    fingerprint_of,
    parse_batch,
    signed_message,
)
from warden.errors import FeedBadSignature, FeedMalformed


def key_path(settings: Settings) -> Path:
    return settings.feeds.key_file or settings.data_dir / "feed-key.pem"


@dataclass(frozen=True)
class FeedSigner:
    """This instance's feed key: signs batches, and shows what subscribers pin."""

    key: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_raw)

    def describe(self) -> dict[str, Any]:
        return {
            "algorithm": "ed25519",
            "key": base64.b64encode(self.public_raw).decode(),
            "fingerprint": self.fingerprint,
            "protocol": PROTOCOL,
        }

    def envelope(self, batch: FeedBatch) -> bytes:
        body = batch.as_json()
        signature = base64.b64encode(self.key.sign(signed_message(body))).decode()
        return json.dumps({"batch": body, "signature": signature}, separators=(",", ":")).encode()


def verify_envelope(envelope: dict[str, Any], public_hex: str, max_entries: int) -> FeedBatch:
    """The batch inside `envelope` once its signature verifies with the pinned key."""
    body, signature = envelope.get("batch"), envelope.get("signature")
    if set(envelope) != {"batch", "signature"} or not isinstance(body, dict):
        raise FeedMalformed("expected {'batch': {...}, 'signature': '<base64>'}")
    try:
        raw = base64.b64decode(str(signature), validate=True)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(
            raw, signed_message(body)
        )
    except (InvalidSignature, ValueError) as exc:
        raise FeedBadSignature(
            f"signature does not verify with the pinned key ({exc.__class__.__name__})"
        ) from None
    return parse_batch(body, max_entries=max_entries)
