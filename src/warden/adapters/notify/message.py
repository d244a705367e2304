"""The alert every channel delivers, and the interface of a channel.

An alert carries words and facts only — never media, never a picture of the
uploader, never a secret: it is written to be pasted into a room many people
read. `facts` are plain JSON values (bank names, counts, hashes, codes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from warden.errors import NotifyError


@dataclass(frozen=True)
class Alert:
    """One message: which event, its dedup key, a title, a sentence and facts."""

    event: str
    key: str
    title: str
    text: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 0  # same-key events suppressed since the last message
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def plain(self) -> str:
        """The message as plain text (chat, email)."""
        lines = [f"[Warden] {self.title}", self.text]
        if self.repeats:
            lines.append(f"({self.repeats} more like this since the last message)")
        lines.extend(f"- {k}: {v}" for k, v in self.facts.items())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The message as JSON (signed webhooks)."""
        return {
            "event": self.event,
            "key": self.key,
            "title": self.title,
            "text": self.text,
            "facts": dict(self.facts),
            "repeats": self.repeats,
            "at": self.at.isoformat(),
        }

    def json_bytes(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()


class Notifier(Protocol):
    """A channel: `send` delivers or raises NotifyError."""

    name: str

    async def send(self, alert: Alert) -> None: ...


async def deliver(
    client: httpx.AsyncClient, channel: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One HTTP delivery; NotifyError (status, never the URL: webhook URLs carry
    their token) unless 2xx."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise NotifyError(f"{channel}: cannot be reached ({type(exc).__name__})") from None
    if response.status_code == 429:
        wait = response.headers.get("retry-after", "?")
        raise NotifyError(f"{channel}: throttled (429, retry after {wait} s)")
    if not 200 <= response.status_code < 300:
        raise NotifyError(f"{channel}: answered {response.status_code}")
    return response
