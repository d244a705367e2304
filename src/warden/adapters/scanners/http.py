"""A generic HTTP scanner: POST the bytes (or a one-time URL), read a verdict from the JSON answer.

For services Warden has no adapter for (an in-house classifier, a hosted model
behind a small API): the request is the media itself (`Content-Type` its type,
`X-Warden-SHA256` its hash, the secret in a configurable header) or, with
`send = "url"`, JSON naming a signed one-time URL on Warden's own listener that
serves the bytes once (adapters/scanners/media_links.py), revoked as soon as
the scanner answered or gave up. The answer is any JSON object in which
`decision_field` (a dotted path) holds a value listed in `reject_values`,
`review_values` or `accept_values`. Any other value, a missing field or a
non-JSON body is an unreadable answer: the failure mode decides, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from warden.adapters.scanners.interface import Answer, Submission, json_body, post
from warden.adapters.scanners.media_links import MediaLinks
from warden.domain.verdict import Decision
from warden.errors import ScannerBadAnswer

_MISSING = object()


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (`result.action`, `items.0.label`), or _MISSING."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _word(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value).strip().lower()
    return None


class HttpScanner:
    """One configured generic scanner."""

    kind = "http"

    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.AsyncClient,
        *,
        secret: str | None = None,
        secret_header: str = "Authorization",  # noqa: S107 (a header name)
        decision_field: str = "decision",
        reject_values: Iterable[str] = ("reject",),
        review_values: Iterable[str] = ("review",),
        accept_values: Iterable[str] = ("accept",),
        labels_field: str | None = "labels",
        links: MediaLinks | None = None,
        link_ttl_s: float = 5.0,
    ) -> None:
        self.name = name
        self.url = url
        self.client = client
        self.headers = {secret_header: secret} if secret else {}
        self.decision_field = decision_field
        self.values: dict[str, Decision] = {}
        for values, decision in (
            (accept_values, Decision.ACCEPT),
            (review_values, Decision.REVIEW),
            (reject_values, Decision.REJECT),  # last: a value listed twice refuses
        ):
            self.values.update({v.strip().lower(): decision for v in values})
        self.labels_field = labels_field
        self.links = links  # None: the bytes are POSTed; else a one-time URL is
        self.link_ttl_s = link_ttl_s

    async def _ask(self, item: Submission) -> httpx.Response:
        if self.links is None:
            headers = {**self.headers, "Content-Type": item.mime, "X-Warden-SHA256": item.sha256}
            return await post(self.client, self.name, self.url, content=item.data, headers=headers)
        link = self.links.issue(
            item.data, item.mime, item.sha256, csam=item.csam, ttl_s=self.link_ttl_s
        )
        request = {
            "url": link.url,
            "sha256": item.sha256,
            "content_type": item.mime,
            "size": len(item.data),
            "expires_at": link.expires_at,
        }
        try:
            return await post(
                self.client,
                self.name,
                self.url,
                json=request,
                headers={**self.headers, "X-Warden-SHA256": item.sha256},
            )
        finally:  # answered, failed or timed out: the bytes are not served any more
            self.links.revoke(link.id)

    async def scan(self, item: Submission) -> Answer:
        response = await self._ask(item)
        body = json_body(response, self.name)
        raw = lookup(body, self.decision_field)
        if raw is _MISSING:
            raise ScannerBadAnswer(
                f"{self.name}: the answer has no '{self.decision_field}'", scanner=self.name
            )
        word = _word(raw)
        decision = self.values.get(word) if word is not None else None
        if decision is None:
            shown = repr(raw)[:40]
            raise ScannerBadAnswer(
                f"{self.name}: '{self.decision_field}' is {shown}, not a configured value",
                scanner=self.name,
            )
        labels: dict[str, Any] = {self.decision_field: raw}
        if self.labels_field:
            found = lookup(body, self.labels_field)
            if found is not _MISSING:
                labels[self.labels_field] = found
        return Answer(decision, labels)
