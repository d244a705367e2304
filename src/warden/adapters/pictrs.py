"""pict-rs's internal API, as Lemmy itself calls it.

Purging is `POST /internal/purge?alias=<alias>` with the `X-Api-Token` header
(pict-rs's `server.api_key`); pict-rs removes the image behind the alias with
every alias and variant of it, and answers `{"msg": "ok", "aliases": [...]}`.
`GET /internal/aliases?alias=` tells whether an alias still exists. Lemmy's
own purge code (crates/api_common/src/request.rs, `purge_image_from_pictrs`)
makes exactly this call.

`GET /internal/identifier?alias=` answers `{"msg": "ok", "identifier": "..."}`:
the file path (filesystem store) or object key (object store) behind an alias.
`warden rescan --purge` uses it to turn the stored files it refused back into
aliases it can purge. (Written from pict-rs's README for 0.4/0.5; its source
could not be read from here to confirm the exact body.)
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from warden.errors import WardenError


class PictrsError(WardenError):
    code = "pictrs_error"


@dataclass(frozen=True)
class PurgeResult:
    alias: str
    purged: bool  # False when pict-rs no longer had it (already gone)
    aliases: tuple[str, ...] = ()


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

    def _request(self, method: str, path: str, alias: str) -> httpx.Response | None:
        """One internal-API call about an alias; None when pict-rs does not know it (404)."""
        try:
            response = self._client.request(method, path, params={"alias": alias})
        except httpx.HTTPError as exc:
            raise PictrsError(f"pict-rs unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise PictrsError("pict-rs refused the API key")
        return response

    def exists(self, alias: str) -> bool:
        """True while pict-rs still knows the alias."""
        response = self._request("GET", "/internal/aliases", alias)
        if response is None:
            return False
        if response.status_code >= 400:
            raise PictrsError(f"pict-rs answered {response.status_code} for aliases of {alias}")
        return True

    def identifier(self, alias: str) -> str | None:
        """The storage path or object key behind an alias, or None when it is gone."""
        response = self._request("GET", "/internal/identifier", alias)
        if response is None:
            return None
        if response.status_code >= 400:
            raise PictrsError(f"pict-rs answered {response.status_code} for identifier of {alias}")
        try:
            identifier = response.json().get("identifier")
        except (ValueError, AttributeError) as exc:
            raise PictrsError(
                f"pict-rs answered a non-JSON body for identifier of {alias}"
            ) from exc
        return str(identifier) if identifier else None

    def purge(self, alias: str) -> PurgeResult:
        """Purge one alias (and everything pict-rs holds behind it)."""
        response = self._request("POST", "/internal/purge", alias)
        if response is None:
            return PurgeResult(alias, purged=False)
        if response.status_code >= 400:
            raise PictrsError(
                f"pict-rs answered {response.status_code} purging {alias}: {response.text[:200]}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise PictrsError(f"pict-rs answered a non-JSON body purging {alias}") from exc
        return PurgeResult(alias, purged=True, aliases=tuple(body.get("aliases") or ()))
