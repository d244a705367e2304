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
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from warden.adapters.pictrs_proxy import ingest_kind, pictrs_path
from warden.errors import BodyTimeout
from warden.web.deps import ServicesDep
from warden.web.peers import client_address
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
        if services.metrics is not None:
            services.metrics.remote_blocked.inc()
        return _refusal(
            403,
            "remote-media-blocked",
            "remote media is not stored on this instance "
            "(Warden: federated.remote_media = block); link the origin instead",
        )
    upstream = services.pictrs_proxy
    assert upstream is not None and services.ingest is not None
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
