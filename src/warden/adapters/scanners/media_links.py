"""One-time media URLs: how a scanner that fetches media by URL gets it from Warden.

Some scanning services take a URL instead of the bytes. Warden's media has no
public address (it is refused or not yet stored), so Warden serves each file
itself, on its own listener (`GET /scanner-media/{token}`), under these rules:

- the token is `<id>.<expiry>.<signature>`: a random 128-bit id, the Unix second
  it expires, and the HMAC-SHA256 of `<id>.<expiry>` under a secret made for
  this process at start (never written anywhere, so a restart voids every link);
- the bytes are served **once**: the first GET takes them out of the store; a
  second GET, or one after the expiry, or after the scan ended (the scanner
  answered or timed out: the link is revoked) is answered 410 `media_link_gone`;
  a token that is malformed or not signed by this process is 404 `not_found`,
  the same answer as a path that never existed;
- nothing lists the links, and media whose verdict carries a known-CSAM match
  is never given one (`issue` refuses it; the service never sends it at all).

The store is bounded by what is being scanned: a link lives only while its
scanner's request is in flight. Thread-safe (the web route and the scanners may
run on different threads in tests; one lock, held for a dictionary operation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from warden.errors import MediaLinkGone, NotFound, ScannerRefused

#: Where the route lives on Warden's listener (web/routers/scanner_media.py).
PATH = "/scanner-media"


@dataclass(frozen=True)
class HeldMedia:
    """What one link serves."""

    data: bytes
    mime: str
    sha256: str
    expires_at: int  # Unix seconds


@dataclass(frozen=True)
class MediaLink:
    """A link as handed to a scanner."""

    id: str
    url: str
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class MediaLinks:
    """Issues, serves once and revokes signed one-time media URLs under `base_url`
    (the address the scanners reach Warden at: `scanners.media_url_base`)."""

    def __init__(
        self,
        base_url: str,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.time,
        key: bytes | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self.clock = clock
        self._key = key or secrets.token_bytes(32)  # per process: a restart voids all links
        self._held: dict[str, HeldMedia] = {}
        self._lock = threading.Lock()

    def _sign(self, link_id: str, expires_at: int) -> str:
        mac = hmac.new(self._key, f"{link_id}.{expires_at}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    def issue(
        self, data: bytes, mime: str, sha256: str, *, csam: bool = False, ttl_s: float | None = None
    ) -> MediaLink:
        """A fresh link to these bytes, valid once for `ttl_s` (default the store's).
        Media with a known-CSAM match never gets one (ScannerRefused)."""
        if csam:
            raise ScannerRefused("known-CSAM matches are never sent to a scanner")
        expires_at = int(self.clock() + (self.ttl_s if ttl_s is None else ttl_s)) + 1
        link_id = _b64(secrets.token_bytes(16))
        token = f"{link_id}.{expires_at}.{self._sign(link_id, expires_at)}"
        with self._lock:
            self._sweep()
            self._held[link_id] = HeldMedia(data, mime, sha256, expires_at)
        return MediaLink(link_id, f"{self.base}{PATH}/{token}", expires_at)

    def take(self, token: str) -> HeldMedia:
        """The bytes behind `token`, removed from the store (they are served once).
        NotFound for a token this process did not sign; MediaLinkGone when it did,
        but the link was used, revoked or has expired."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise NotFound("no such media link")
        link_id, stamp, signature = parts
        if not hmac.compare_digest(signature, self._sign(link_id, int(stamp))):
            raise NotFound("no such media link")
        with self._lock:
            held = self._held.pop(link_id, None)
        if held is None:
            raise MediaLinkGone("this media link was used or revoked")
        if self.clock() >= held.expires_at:
            raise MediaLinkGone("this media link has expired")
        return held

    def revoke(self, link_id: str) -> None:
        """Forget a link (its scan is over, answered or not)."""
        with self._lock:
            self._held.pop(link_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def _sweep(self) -> None:
        """Drop expired links (under the lock): a scanner that never fetched leaves none."""
        now = self.clock()
        for link_id in [k for k, v in self._held.items() if now >= v.expires_at]:
            del self._held[link_id]
