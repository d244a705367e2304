"""What the console shows of a piece of media: a pixelated thumbnail, the clear
picture only when an admin asks for that one item, and nothing at all of media a
CSAM bank matched.

Moderators and admins are protected: the queue's thumbnails are made HERE, on
the server, by shrinking the first frame to `console.pixel_blocks` pixels
across and blowing it up again, so the browser never receives anything
recognisable unless someone asks for the clear picture of one item (the
console audits that). Both are re-encoded PNGs of the decoded frame: the
original bytes (their metadata, anything hidden in them) never reach a browser.

Media is **withheld** — no thumbnail, no clear picture, only its metadata —
when its decision recorded a match in a CSAM bank, or when it matches one
now (a bank imported after the upload). That check runs before any byte is
fetched.

Where the bytes come from, in order: the evidence store (refused media kept
by the gate), the pict-rs alias recorded with the decision (attribution),
then pict-rs's own listing of stored files by SHA-256 (pict-rs 0.5; the hook
sees the stored bytes, so the SHA-256 is the same).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from warden.adapters.pictrs import PictrsAdmin, fetch_original
from warden.domain.banks import HashMatch
from warden.domain.verdict import FrameHash
from warden.errors import MediaError, PictrsError, WardenError
from warden.media.decode import DecodeLimits, decode
from warden.store.decisions import DecisionRecord
from warden.store.quarantine import EvidenceStore

log = logging.getLogger(__name__)

THUMB_SIDE = 240  # pixels across a queue thumbnail (and the most a clear view is scaled to x4)
CLEAR_SIDE = 960
Matcher = Callable[[str, Sequence[FrameHash]], list[HashMatch]]


def recorded_csam(record: DecisionRecord) -> bool:
    """True when the decision itself recorded a match in a CSAM bank."""
    v = record.verdict
    if any(m.get("csam") is True for m in v.matches):
        return True
    return any(r.detail.get("csam") is True for r in v.reasons)


def attribution(record: DecisionRecord, name: str) -> str | None:
    """An attribution field of a decision (`alias`, `account`, `client_address`,
    `community_id`) when the decisions log records it, else None; the log gains
    these fields with issue 18's attribution work, and the console shows them
    as soon as they are there."""
    value = getattr(record, name, None)
    return None if value in (None, "") else str(value)


def pixelate(image: Image.Image, blocks: int, side: int = THUMB_SIDE) -> bytes:
    """`image` shrunk to `blocks` pixels across and blown up to `side`: a PNG in which
    only colours and rough shapes survive."""
    width, height = image.size
    scale = blocks / max(width, height)
    small = image.convert("RGB").resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX
    )
    factor = max(1, side // max(small.size))
    big = small.resize((small.width * factor, small.height * factor), Image.Resampling.NEAREST)
    out = io.BytesIO()
    big.save(out, format="PNG")
    return out.getvalue()


def clear_png(image: Image.Image, side: int = CLEAR_SIDE) -> bytes:
    """The decoded first frame as a PNG no larger than `side` (never the original bytes)."""
    picture = image.convert("RGB")
    picture.thumbnail((side, side))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


@dataclass
class MediaSource:
    """Finds a decision's bytes: evidence, the recorded alias, pict-rs's listing."""

    evidence: EvidenceStore | None
    pictrs_url: str
    pictrs_key: str
    limits: DecodeLimits
    timeout_s: float = 30.0
    listing_ttl_s: float = 60.0
    _listing: dict[str, str] | None = None
    _listed_at: float = 0.0

    def _admin(self) -> PictrsAdmin:
        return PictrsAdmin(self.pictrs_url, self.pictrs_key, timeout_s=self.timeout_s)

    def aliases_by_sha256(self) -> dict[str, str]:
        """SHA-256 -> one alias of every file pict-rs stores (pict-rs 0.5), read at most
        once a minute; empty when pict-rs cannot list (0.4, no key, unreachable)."""
        now = time.monotonic()
        if self._listing is not None and now - self._listed_at < self.listing_ttl_s:
            return self._listing
        listing: dict[str, str] = {}
        if self.pictrs_key:
            try:
                with self._admin() as admin:
                    for stored in admin.stored_files():
                        if stored.aliases:
                            listing.setdefault(stored.sha256, stored.aliases[0])
            except WardenError as exc:  # PictrsError, HashListingUnavailable
                log.info("console: pict-rs cannot list its files: %s", exc.message)
        self._listing, self._listed_at = listing, now
        return listing

    def forget(self) -> None:
        """Drop the cached listing (after a purge)."""
        self._listing = None

    def alias_of(self, record: DecisionRecord) -> str | None:
        alias = attribution(record, "alias")
        if alias is not None:
            return alias
        sha = record.verdict.sha256
        return self.aliases_by_sha256().get(sha) if sha else None

    def media(self, record: DecisionRecord) -> bytes | None:
        """The bytes behind a decision, or None when nothing holds them any more."""
        if record.evidence_id and self.evidence is not None:
            try:
                return self.evidence.media(record.evidence_id)
            except WardenError as exc:
                log.warning("console: evidence %s unreadable: %s", record.evidence_id, exc)
        alias = self.alias_of(record)
        return None if alias is None else self.media_of_alias(alias)

    def media_of_alias(self, alias: str) -> bytes | None:
        """The original bytes pict-rs serves under `alias`, or None."""
        try:
            return fetch_original(
                self.pictrs_url, alias, timeout_s=self.timeout_s, max_bytes=self.limits.max_bytes
            )
        except PictrsError as exc:
            log.warning("console: pict-rs could not serve %s: %s", alias, exc.message)
            return None

    def first_frame(self, record: DecisionRecord) -> Image.Image | None:
        """The decoded first frame under the gate's own decode limits, or None."""
        data = self.media(record)
        if data is None:
            return None
        try:
            decoded = decode(data, self.limits)
        except MediaError:
            return None
        return decoded.frames[0].image if decoded.frames else None


class Thumbnails:
    """Pixelated thumbnails and clear views, never of media a CSAM bank matched."""

    def __init__(self, source: MediaSource, matcher: Matcher | None, blocks: int) -> None:
        self.source = source
        self.matcher = matcher
        self.blocks = blocks

    def withheld(self, record: DecisionRecord) -> bool:
        """True when this media must never be shown: a CSAM bank matched it, then or now."""
        if recorded_csam(record):
            return True
        if self.matcher is None:
            return False
        found = self.matcher(record.verdict.sha256, record.verdict.frames)
        return any(m.bank.csam for m in found)

    def thumbnail(self, record: DecisionRecord) -> bytes | None:
        """The pixelated PNG, or None (withheld, or the bytes are gone)."""
        if self.withheld(record):
            return None
        frame = self.source.first_frame(record)
        return None if frame is None else pixelate(frame, self.blocks)

    def clear(self, record: DecisionRecord) -> bytes | None:
        """The clear PNG for one explicit request, or None (withheld, or gone)."""
        if self.withheld(record):
            return None
        frame = self.source.first_frame(record)
        return None if frame is None else clear_png(frame)
