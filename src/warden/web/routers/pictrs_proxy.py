"""`/pictrs-proxy/*`: Lemmy's way to pict-rs, through Warden (see adapters/pictrs_proxy.py).

Lemmy's `pictrs.url` points here; every request is forwarded to pict-rs
unchanged and pict-rs's answer streamed back, so Lemmy sees pict-rs. Remote
fetches (`GET /image/download`, `?proxy=`) are answered here when
`federated.remote_media = "block"`: Lemmy gets a JSON error with a `msg`, as
from a failed pict-rs ingest, and links the image at its origin instead of
caching it (Lemmy 0.19.9+; older versions leave the post without thumbnail).

Lemmy builds pict-rs URLs by string concatenation, `format!("{}image", url)`
(LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:102, :154, :161, :213,
crates/api_common/src/request.rs:130, :178, :207; 0.19.9 crates/routes/src/
images.rs:254 `healthz`; 1.0 main crates/routes/src/images/upload.rs:194,
download.rs:39, :43, :83, :92, mod.rs:13, crates/api/api_utils/src/request.rs:
404, :443, :484, :533, :544). Its `url` type prints `http://host:8080` as
`http://host:8080/` but keeps a path as written, so `pictrs.url =
http://warden:8790/pictrs-proxy` (no trailing slash) asks for
`/pictrs-proxyimage`. Both forms are served here: `/pictrs-proxy/<path>` and
`/pictrs-proxy<path>` for the prefixes Lemmy joins (`image`, `internal/`,
`healthz`).

Only the Lemmy backends may call it (`server.proxy_allow_from`, loopback by
default): it reaches pict-rs's API, internal endpoints included.

Uploads (`POST /image`) are scanned here with the uploader attributed
(services/uploads.py): a refused upload is answered here, as pict-rs answers a
failed validation (400 `failed-external-validation`, which both Lemmy versions
read as a failed upload: 0.19.3 crates/routes/src/images.rs:49-53, :117-118; 1.0
main crates/routes/src/images/upload.rs:236-264), and pict-rs never sees it.
The uploader's address is X-Forwarded-For read from the right past
`server.trusted_proxies` and the Lemmy backend itself, which appends its own
peer (web/peers.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import nullcontext
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from warden.adapters.pictrs_proxy import UploadPart, ingest_kind, pictrs_path, stored_aliases
from warden.errors import BodyTimeout, MediaTooLarge
from warden.media.pipeline import ScanContext
from warden.services import Services
from warden.web.answers import read_capped
from warden.web.deps import ServicesDep
from warden.web.peers import client_address, forwarded_client, networks, parse_address
from warden.web.routers.pictrs import client_in

log = logging.getLogger(__name__)
router = APIRouter(tags=["pict-rs"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _refusal(status: int, code: str, msg: str) -> JSONResponse:
    """pict-rs's error shape, `{"msg", "code"}` (robinst/pict-rs 31049d3 = v0.5.16
    src/error.rs:291-303), which every Lemmy version reads for its log."""
    return JSONResponse({"msg": msg, "code": code}, status)


async def proxy(path: str, request: Request, services: ServicesDep) -> Response:
    """Lemmy's `pictrs.url` (`/pictrs-proxy/`, or without the slash): forwarded to pict-rs
    unchanged, so Lemmy sees pict-rs's own answer; 403 for a blocked remote fetch or a
    caller outside server.proxy_allow_from."""
    server = services.settings.server
    if not client_in(request, server.proxy_allow_from):
        address = client_address(request)
        peer = str(address) if address is not None else "unknown"
        log.warning("pict-rs proxy refused %s: not in server.proxy_allow_from", peer)
        return _refusal(
            403,
            "forbidden",
            f"{peer} may not use Warden's pict-rs proxy: add the Lemmy backend's address "
            "to server.proxy_allow_from",
        )
    target = pictrs_path(path)
    if target is None:
        return _refusal(404, "not-found", f"no pict-rs endpoint at /pictrs-proxy{path[:100]}")
    kind = ingest_kind(request.method, target, request.query_params)
    if kind == "remote" and services.settings.federated.remote_media == "block":
        url = request.query_params.get("url") or request.query_params.get("proxy", "")
        log.info("remote fetch blocked: %s", url[:300])
        services.metrics.remote_blocked.inc()
        return _refusal(
            403,
            "remote-media-blocked",
            "remote media is not stored on this instance "
            "(Warden: federated.remote_media = block); link the origin instead",
        )
    if kind == "upload":
        return await _upload(target, request, services)
    upstream = services.pictrs_proxy
    tracking = services.ingest.running(kind) if kind else nullcontext()
    try:
        with tracking:  # pict-rs validates before it answers: the whole ingest is inside
            answer = await upstream.forward(
                request.method,
                quote(target, safe="/:@!$&'()*+,;=-._~"),
                request.url.query,
                request.headers,
                request.stream(),
            )
    except BodyTimeout as exc:  # Lemmy's upload stream stalled (web/deadlines.py)
        return _refusal(408, "request-timeout", exc.message)
    except Exception as exc:
        log.warning("pict-rs unreachable through the proxy: %s", exc)
        return _refusal(502, "bad-gateway", f"pict-rs unreachable: {exc}")
    return StreamingResponse(
        answer.body,
        status_code=answer.status,
        headers=dict(answer.headers),
        background=BackgroundTask(answer.response.aclose),
    )


#: room for the multipart framing around a file of `media.max_bytes`
_FRAMING = 64 * 1024
#: files one upload may carry (Lemmy's clients send one; pict-rs takes several)
_MAX_FILES = 16


#: the field pict-rs reads files from (31049d3 src/lib.rs:206-230: "images", an array)
UPLOAD_FIELD = "images[]"


async def upload_parts(body: bytes, content_type: str, *, max_files: int) -> list[UploadPart]:
    """The files of a pict-rs upload body, as pict-rs reads them: every `images[]`
    field that is a file. An empty list for a body that is not multipart or cannot be
    parsed: the upload is then forwarded as it is, pict-rs answers it, and the
    validation hook scans whatever pict-rs would store."""
    if not content_type.lower().startswith("multipart/form-data"):
        return []

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(Headers({"content-type": content_type}), stream(), max_files=max_files)
    try:
        form = await parser.parse()
    except MultiPartException:
        return []
    try:
        parts = []
        for value in form.getlist(UPLOAD_FIELD):
            if isinstance(value, UploadFile):
                parts.append(UploadPart(value.filename, value.content_type, await value.read()))
        return parts
    finally:
        await form.close()


def uploader_address(request: Request, services: Services) -> str | None:
    """The uploader's address: X-Forwarded-For from the right, past the Lemmy backend
    (a caller admitted by server.proxy_allow_from, which appends its peer) and
    `server.trusted_proxies` (nginx in front of Lemmy)."""
    server = services.settings.server
    peer = parse_address(request.client.host) if request.client else None
    trusted = [*networks(server.proxy_allow_from), *networks(server.trusted_proxies)]
    found = forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)
    return str(found) if found is not None else None


async def _upload(target: str, request: Request, services: Services) -> Response:
    """Scan the upload where the uploader is known; forward it only when accepted."""
    screen = services.uploads
    address = uploader_address(request, services)
    who = await screen.attribution(request.headers.raw, address, address)
    limit = services.settings.media.max_bytes * _MAX_FILES + _FRAMING
    try:
        body = await read_capped(request, limit)
    except BodyTimeout as exc:  # Lemmy's upload stream stalled (web/deadlines.py)
        return _refusal(408, "request-timeout", exc.message)
    except MediaTooLarge as exc:
        context = ScanContext(source="upload")
        await services.gate.refuse_unread(
            context, exc.code, exc.message, limit + 1, {"limit": limit}, attribution=who
        )
        return _refusal(413, "validate-file-size", "File too large")
    content_type = request.headers.get("content-type", "")
    parts = await upload_parts(body, content_type, max_files=_MAX_FILES)
    screened = await screen.screen(parts, who)
    refused = screened.refusal
    if refused is not None:
        first = refused.verdict.reasons[0]
        log.info(
            "upload refused in the proxy for %s (%s): %s",
            who.account or "an unknown account",
            address,
            first.code,
        )
        # pict-rs's own words for a failed validation: Warden's reason stays in its log
        return _refusal(400, "failed-external-validation", "Failed external validation")
    held = screen.expect(screened)
    aliases: list[str] = []
    try:
        with services.ingest.running("upload"):
            answer = await services.pictrs_proxy.forward(
                request.method,
                quote(target, safe="/:@!$&'()*+,;=-._~"),
                request.url.query,
                request.headers,
                body,
            )
            try:  # as pict-rs sent it (Lemmy asks for no compression: see above)
                content = b"".join([chunk async for chunk in answer.body])
            finally:
                await answer.response.aclose()
        if answer.status == 201:
            aliases = stored_aliases(content)
    except Exception as exc:
        log.warning("pict-rs unreachable through the proxy: %s", exc)
        return _refusal(502, "bad-gateway", f"pict-rs unreachable: {exc}")
    finally:
        await screen.stored(held, screened, aliases)
    return Response(content, status_code=answer.status, headers=dict(answer.headers))


for _method in METHODS:  # one route per method: each gets its own OpenAPI operation
    # `{path:path}` right after the prefix matches `/pictrs-proxy/image` (path
    # `/image`) and Lemmy's slash-less concatenation `/pictrs-proxyimage` alike
    router.add_api_route(
        "/pictrs-proxy{path:path}",
        proxy,
        methods=[_method],
        operation_id=f"pictrs_proxy_{_method.lower()}",
        responses={
            403: {"description": "Caller not in server.proxy_allow_from, or a blocked fetch."},
            408: {"description": "The request body came slower than server.body_timeout_s."},
            404: {"description": "Not a path Lemmy asks pict-rs for."},
            502: {"description": "pict-rs could not be reached."},
        },
    )
