"""What every external scanner adapter takes, returns and raises.

One place turns HTTP outcomes into the ScannerError family, so every vendor's
429, 5xx, refused connection and timeout mean the same thing to the service
(and the failure mode applies the same way). Messages name the scanner and the
status, never a URL or a header: URLs of some services carry their secret
(a pictrs-safety id, a webhook token).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from warden.domain.verdict import Decision
from warden.errors import (
    ScannerBadAnswer,
    ScannerRefused,
    ScannerThrottled,
    ScannerTimeout,
    ScannerUnavailable,
)


@dataclass(frozen=True)
class Submission:
    """The media to ask about: the bytes pict-rs sent, their type and hash."""

    data: bytes
    mime: str
    sha256: str
    source: str = "upload"
    csam: bool = False  # a known-CSAM match: never sent out (services/external_scan.py)


@dataclass(frozen=True)
class Answer:
    """A scanner's verdict and its own labels, raw (for the decisions log).
    `csam` marks a match against a known-CSAM hash list (PhotoDNA): treated as a
    CSAM-bank match everywhere (never shown, never disclosed, alerted)."""

    decision: Decision
    labels: Mapping[str, Any] = field(default_factory=dict)
    csam: bool = False


class ExternalScanner(Protocol):
    """An adapter: `scan` answers or raises a ScannerError; nothing else escapes."""

    name: str
    kind: str

    async def scan(self, item: Submission) -> Answer: ...


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


async def post(client: httpx.AsyncClient, scanner: str, url: str, **kwargs: Any) -> httpx.Response:
    """POST and check the status: the response when 2xx (or a status the caller
    lists in `accept`), else the ScannerError it means."""
    accept: frozenset[int] = kwargs.pop("accept", frozenset())
    try:
        response = await client.post(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ScannerTimeout(
            f"{scanner}: no answer in time ({type(exc).__name__})", scanner=scanner
        ) from None
    except httpx.TransportError as exc:
        raise ScannerUnavailable(
            f"{scanner}: cannot be reached ({type(exc).__name__})", scanner=scanner
        ) from None
    status = response.status_code
    if 200 <= status < 300 or status in accept:
        return response
    if status == 429:
        wait = retry_after(response.headers.get("retry-after"))
        raise ScannerThrottled(
            f"{scanner}: throttled (429, retry after {wait if wait is not None else '?'} s)",
            scanner=scanner,
            retry_after_s=wait,
        )
    if status >= 500:
        raise ScannerUnavailable(f"{scanner}: answered {status}", scanner=scanner)
    raise ScannerRefused(f"{scanner}: refused the request ({status})", scanner=scanner)


def json_body(response: httpx.Response, scanner: str) -> Any:
    """The answer's JSON, or ScannerBadAnswer."""
    try:
        return response.json()
    except ValueError:
        raise ScannerBadAnswer(
            f"{scanner}: answer is not JSON ({response.status_code})", scanner=scanner
        ) from None
