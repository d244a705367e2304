"""The HTTP side of hash feeds: pull a batch, fetch a publisher's key, push a batch.

Every answer is read as a stream and abandoned at `max_bytes`, so a publisher
that answers with gigabytes costs this instance `max_bytes` of memory and one
refused pull, never more; redirects are not followed (the subscribed URL is the
one the admin chose). Errors come back as FeedError subclasses naming the URL;
the caller decides what they mean for the feed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from warden import __version__
from warden.errors import FeedMalformed, FeedTooLarge, FeedUnavailable

KEY_PATH = "/.well-known/warden-feed-key"
USER_AGENT = f"warden-feeds/{__version__}"


@dataclass(frozen=True)
class Pulled:
    """One pull: `body` is None when the publisher answered 304 Not Modified."""

    body: dict[str, Any] | None
    etag: str | None


def origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedMalformed(
            f"{what}: not JSON ({exc.__class__.__name__}: {str(exc)[:120]})"
        ) from None
    if not isinstance(value, dict):
        raise FeedMalformed(f"{what}: expected a JSON object")
    return value


class FeedClient:
    """One async HTTP client shared by every subscription and push target."""

    def __init__(self, *, timeout_s: float, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.http = httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FeedTooLarge(f"{url}: answer of {int(declared):,} bytes refused unread")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FeedTooLarge(f"{url}: answer longer than {self.max_bytes:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[int, bytes, httpx.Headers]:
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code == 304:
                    return 304, b"", response.headers
                body = await self._read(response, url)
                return response.status_code, body, response.headers
        except httpx.HTTPError as exc:
            raise FeedUnavailable(f"{url}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc

    async def public_key(self, feed_url: str) -> dict[str, Any]:
        """The publisher's `{"key": <base64 raw public key>, "fingerprint": ...}`."""
        url = origin(feed_url) + KEY_PATH
        status, body, _ = await self._get(url, {"Accept": "application/json"})
        if status != 200:
            raise FeedUnavailable(f"{url}: HTTP {status}")
        return parse_json(body, url)

    async def pull(self, feed_url: str, cursor: int, etag: str | None) -> Pulled:
        """The signed batch after `cursor`, or `Pulled(None, etag)` on 304."""
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        url = str(httpx.URL(feed_url).copy_merge_params({"cursor": str(cursor)}))
        status, body, answer = await self._get(url, headers)
        if status == 304:
            return Pulled(None, etag)
        if status != 200:
            raise FeedUnavailable(f"{feed_url}: HTTP {status}: {body[:200]!r}")
        return Pulled(parse_json(body, feed_url), answer.get("etag"))

    async def push(self, inbox_url: str, envelope: bytes) -> int:
        """POST a signed batch to a subscriber's inbox; its HTTP status."""
        try:
            response = await self.http.post(
                inbox_url, content=envelope, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise FeedUnavailable(
                f"{inbox_url}: {exc.__class__.__name__}: {str(exc)[:200]}"
            ) from exc
        return response.status_code
