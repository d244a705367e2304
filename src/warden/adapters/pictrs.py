"""pict-rs's internal API, read from pict-rs's own handlers (0.4.x and 0.5.x).

Every call carries `X-Api-Token` (pict-rs's `server.api_key`); without the
right key pict-rs answers 401 `{"msg": "Invalid API Key"}`
(robinst/pict-rs 0.4.1 e10cb14 src/middleware.rs:44-76 and 221-233).

- `GET /internal/aliases?alias=` answers 200 `{"msg": "ok", "aliases": [...]}`
  with every alias of the alias's file, and 200 with an EMPTY list for an alias
  pict-rs does not know: never 404 (0.4.1 e10cb14 src/lib.rs:1047-1058 and
  src/repo.rs:95-101; 0.5.7 6f95c72 src/lib.rs:1442-1454). An empty list is
  therefore the only "gone" answer.
- `POST /internal/purge?alias=` removes the FILE behind the alias, with every
  alias of it (0.5.7 6f95c72 src/lib.rs:1393-1417 -> src/queue/cleanup.rs:111-144).
  For an alias pict-rs does not know it answers 400
  `{"msg": "No images associated with provided alias"}` up to 0.5.6
  (0.4.1 e10cb14 src/lib.rs:1031-1036; 0.5.6 a613499 src/lib.rs:1436-1439) and
  404 `{"msg": "Requested a file that doesn't exist", "code": "alias-not-found"}`
  from 0.5.7 (6f95c72 src/lib.rs:1405-1409, src/error.rs:132-133 and 273,
  src/error_code.rs:125-127; changed by 3ecefcb). Both mean "already gone"; any
  other 400 (e.g. a read-only pict-rs) is an error.
- `GET /internal/identifier?alias=` answers `{"msg": "ok", "identifier": "..."}`
  (the file path or object key), 404 when the alias is unknown
  (0.4.1 e10cb14 src/lib.rs:1060-1077; 0.5.7 6f95c72 src/lib.rs:1457-1473).
- `GET /image/original/{alias}` (public, no key) serves a file's bytes; an
  unknown alias is 404 (with pict-rs's "not found" image as the body when one is
  set), an object store with a public URL answers 303 to it
  (0.5.7 6f95c72 src/lib.rs:984-1022, routes 1532-1543).
- `GET /internal/hashes?slug=&limit=` (0.5.0 and later; 0.4 has no such route
  and answers 404: 0.4.1 e10cb14 src/lib.rs:1184-1194) lists every stored file,
  newest first: `{"msg": "ok", "page": {"limit", "current"?, "prev"?, "next"?,
  "hashes": [{"hex", "aliases", "details"}]}}`; `next` is the slug of the first
  file of the next page, absent on the last (0.5.7 6f95c72 src/lib.rs:560-654,
  src/repo.rs:546-576 and 578-604, src/repo/postgres.rs:716-786). `hex` is the
  SHA-256 of the stored bytes, then 6 bytes of size and 1 of format
  (6f95c72 src/repo/hash.rs:58-88; hashed while storing: src/ingest.rs:87-104).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from warden.errors import HashListingUnavailable, PictrsError, WardenError  # noqa: F401  (defined with the error family)

#: pict-rs <= 0.5.6's answer to a purge of an unknown alias (see the module docstring).
GONE_MESSAGE = "No images associated with provided alias"


@dataclass(frozen=True)
class PurgeResult:
    alias: str
    purged: bool  # False when pict-rs no longer had it (already gone)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredFile:
    """One file pict-rs stores, as `/internal/hashes` lists it."""

    hex: str
    aliases: tuple[str, ...]
    created_at: datetime | None = None
    content_type: str | None = None

    @property
    def sha256(self) -> str:
        """The SHA-256 of the stored bytes: the first 32 bytes of pict-rs's hash."""
        return self.hex[:64].lower()


def _stored_file(item: dict[str, Any]) -> StoredFile:
    details = item.get("details") or {}
    created = details.get("created_at")
    created_at = None
    if isinstance(created, str):
        try:
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            created_at = None
    return StoredFile(
        hex=str(item["hex"]),
        aliases=tuple(str(a) for a in item.get("aliases") or ()),
        created_at=created_at,
        content_type=details.get("content_type"),
    )


def fetch_original(
    base_url: str, alias: str, *, timeout_s: float = 60.0, max_bytes: int = 256 * 1024 * 1024
) -> bytes | None:
    """A stored file's bytes through pict-rs's public route; None when the alias is gone."""
    url = f"{base_url.rstrip('/')}/image/original/{quote(alias, safe='')}"
    try:
        with httpx.stream("GET", url, timeout=timeout_s, follow_redirects=True) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise PictrsError(f"pict-rs answered {response.status_code} serving {alias}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise PictrsError(f"{alias} is larger than {max_bytes} bytes")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise PictrsError(f"pict-rs unreachable: {exc}") from exc


class PictrsAdmin:
    """A synchronous client for the internal endpoints (jobs run in threads, not the event loop)."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0) -> None:
        if not api_key:
            raise PictrsError(
                "pict-rs api_key is not set: the internal API refuses every call without it"
            )
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-Api-Token": api_key},
            timeout=timeout_s,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PictrsAdmin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, params: dict[str, Any]) -> httpx.Response:
        """One internal-API call; refusals of the key and transport failures are errors."""
        try:
            response = self._client.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise PictrsError(f"pict-rs unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise PictrsError("pict-rs refused the API key")
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise PictrsError(f"pict-rs answered a non-JSON body for {what}") from exc
        if not isinstance(body, dict):
            raise PictrsError(f"pict-rs answered an unexpected body for {what}")
        return body

    def aliases(self, alias: str) -> tuple[str, ...]:
        """Every alias of the file behind `alias` (itself included); empty when it is gone."""
        response = self._request("GET", "/internal/aliases", {"alias": alias})
        if response.status_code != 200:
            # never 404 for an alias: a 404 means this is not pict-rs's internal API
            raise PictrsError(
                f"pict-rs answered {response.status_code} for aliases of {alias}"
                " (is pictrs.url pict-rs itself?)"
            )
        found = self._json(response, f"aliases of {alias}").get("aliases")
        if not isinstance(found, list):
            raise PictrsError(f"pict-rs answered no alias list for {alias}")
        return tuple(str(a) for a in found)

    def exists(self, alias: str) -> bool:
        """True while pict-rs still knows the alias (its alias list is not empty)."""
        return bool(self.aliases(alias))

    def identifier(self, alias: str) -> str | None:
        """The storage path or object key behind an alias, or None when it is gone."""
        response = self._request("GET", "/internal/identifier", {"alias": alias})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise PictrsError(f"pict-rs answered {response.status_code} for identifier of {alias}")
        identifier = self._json(response, f"identifier of {alias}").get("identifier")
        return str(identifier) if identifier else None

    def purge(self, alias: str) -> PurgeResult:
        """Purge the file behind one alias, with every alias of it."""
        response = self._request("POST", "/internal/purge", {"alias": alias})
        if response.status_code == 404:
            return PurgeResult(alias, purged=False)  # pict-rs >= 0.5.7: alias-not-found
        if response.status_code == 400:
            try:
                message = response.json().get("msg")
            except (ValueError, AttributeError):
                message = None
            if message == GONE_MESSAGE:
                return PurgeResult(alias, purged=False)  # pict-rs <= 0.5.6 and 0.4.x
            raise PictrsError(f"pict-rs refused to purge {alias}: {response.text[:200]}")
        if response.status_code >= 400:
            raise PictrsError(
                f"pict-rs answered {response.status_code} purging {alias}: {response.text[:200]}"
            )
        body = self._json(response, f"purge of {alias}")
        return PurgeResult(alias, purged=True, aliases=tuple(body.get("aliases") or ()))

    def stored_files(self, *, page_size: int = 100) -> Iterator[StoredFile]:
        """Every file pict-rs stores, page by page (pict-rs >= 0.5).

        Raises `HashListingUnavailable` on pict-rs 0.4 (no such route). pict-rs
        restarts from the newest file when the slug's file was removed between two
        pages (src/repo.rs:610-620: an unknown bound is no bound); that is detected
        and refused, so a listing is never silently partial or repeated.
        """
        seen: set[str] = set()
        slug: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if slug is not None:
                params["slug"] = slug
            response = self._request("GET", "/internal/hashes", params)
            if response.status_code == 404:
                raise HashListingUnavailable(
                    "pict-rs has no /internal/hashes (pict-rs 0.4): its storage cannot be"
                    " listed, so only what Lemmy references is considered"
                )
            if response.status_code != 200:
                raise PictrsError(f"pict-rs answered {response.status_code} listing hashes")
            page = self._json(response, "the hash listing").get("page")
            if not isinstance(page, dict) or not isinstance(page.get("hashes"), list):
                raise PictrsError("pict-rs answered a hash listing without a page")
            files = [_stored_file(item) for item in page["hashes"]]
            if slug is not None and files and files[0].hex in seen:
                raise PictrsError(
                    "pict-rs restarted its hash listing (a file was removed while listing);"
                    " run the command again"
                )
            for stored in files:
                if stored.hex not in seen:
                    seen.add(stored.hex)
                    yield stored
            slug = page.get("next")
            if not slug:
                return
