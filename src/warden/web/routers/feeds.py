"""Hash feeds over HTTP: serve this instance's published feeds, its key, and an inbox.

Another Warden (or anything speaking docs/feeds.md) pulls `GET /feeds/v1/{feed}`
from its cursor and pins the key at `/.well-known/warden-feed-key`; publishers
push to `POST /feeds/v1/inbox`. Nothing here reveals more than a published
feed: hashes, kinds, categories and times, never media or uploaders, and an
unpublished bank is 404 like one that does not exist.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from warden.errors import FeedTooLarge, FeedUnknown
from warden.services.feeds import FeedService

router = APIRouter(tags=["feeds"])


def _feeds(request: Request) -> FeedService:
    service = getattr(request.app.state.services, "feeds", None)
    if not isinstance(service, FeedService):
        raise FeedUnknown("hash feeds are off on this instance (feeds.enabled)")
    return service


@router.get("/feeds/v1/{feed}")
async def feed(
    request: Request,
    feed: str,
    cursor: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The signed batch of entries after `cursor`; 304 while `If-None-Match` matches.

    `{"batch": ..., "signature": ...}` with a weak ETag; 404 `feed_unknown` for a bank
    that is not published. Subscribers call it every `feeds.poll_interval_s`."""
    service = _feeds(request)
    body, etag = await asyncio.to_thread(service.serve, feed, cursor, if_none_match)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if body is None:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/.well-known/warden-feed-key")
def feed_key(request: Request) -> dict[str, Any]:
    """This instance's public feed key and fingerprint, for subscribers to pin.

    The key is base64 of the raw Ed25519 key; subscribers check it against the
    fingerprint their admin typed."""
    return _feeds(request).signer.describe()


@router.post("/feeds/v1/inbox")
async def inbox(request: Request) -> JSONResponse:
    """Publishers push signed batches here: 200 applied, 202 a pull was scheduled.

    202 when the batch starts past this instance's cursor; 403 `feed_bad_signature`,
    404 `feed_unknown` (not subscribed), 409 replay/rollback/quarantine, 413, 429."""
    service = _feeds(request)
    limit = service.settings.feeds.max_batch_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FeedTooLarge(f"batch of {int(declared):,} bytes; at most {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FeedTooLarge(f"batch longer than {limit:,} bytes")
        chunks.append(chunk)
    answer = await service.receive(b"".join(chunks))
    status = 202 if answer.get("status") == "pull_scheduled" else 200
    return JSONResponse(answer, status_code=status)
