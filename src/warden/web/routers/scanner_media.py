"""`GET /scanner-media/{token}`: the one-time media URL an external scanner fetches.

Scanners configured with `send = "url"` are sent a signed link instead of the
bytes (adapters/scanners/media_links.py). This route serves those bytes once:
200 with the media the first time, 410 `media_link_gone` afterwards (used,
expired, or the scan already over), 404 `not_found` for a token this process
did not sign or when no scanner fetches by URL. Nothing here lists links.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from warden.adapters.scanners.media_links import PATH
from warden.errors import NotFound
from warden.web.deps import ServicesDep

router = APIRouter(tags=["scanners"])


@router.get(PATH + "/{token}", response_class=Response)
def scanner_media(token: str, services: ServicesDep) -> Response:
    """Serve a scanner's one-time media link once: 200 with the bytes, then 410.

    The scanner that was sent the link is the only one meant to ask; a second
    request (anyone's), an expired link or one whose scan is over gets 410, a
    token this process did not sign 404."""
    external = services.external
    links = external.links if external is not None else None
    if links is None:
        raise NotFound("no such media link")
    held = links.take(token)
    return Response(
        held.data,
        media_type=held.mime or "application/octet-stream",
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "attachment",
            "X-Warden-SHA256": held.sha256,
        },
    )
