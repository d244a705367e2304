"""`/pictrs-proxy/*`: Lemmy's way to pict-rs, through Warden (see adapters/pictrs_proxy.py).

Lemmy's `pictrs.url` points here; every request is forwarded to pict-rs
unchanged and pict-rs's answer streamed back, so Lemmy sees pict-rs. Remote
fetches (`GET /image/download`) are answered here when
`federated.remote_media = "block"`: Lemmy gets pict-rs's failed-ingest shape
and links the image at its origin instead of caching it.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from warden.adapters.pictrs_proxy import ingest_kind
from warden.web.deps import ServicesDep
from warden.web.routers.pictrs import address_allowed

log = logging.getLogger(__name__)
router = APIRouter(tags=["pict-rs"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def proxy(path: str, request: Request, services: ServicesDep) -> Response:
    """Forward to pict-rs unchanged; Lemmy sees pict-rs's own answer (or a blocked fetch)."""
    if not address_allowed(services, request):
        return JSONResponse(
            {"msg": "this address may not use Warden's pict-rs proxy", "code": "forbidden"}, 403
        )
    kind = ingest_kind(request.method, path, request.query_params)
    policy = services.settings.federated.remote_media
    if kind == "remote" and policy == "block":
        url = request.query_params.get("url") or request.query_params.get("proxy", "")
        log.info("remote fetch blocked: %s", url[:300])
        if services.metrics is not None:
            services.metrics.remote_blocked.inc()
        return JSONResponse(
            {
                "msg": "remote media is not stored on this instance "
                "(Warden: federated.remote_media = block); link the origin instead",
                "code": "remote-media-blocked",
            },
            403,
        )
    upstream = services.pictrs_proxy
    assert upstream is not None and services.ingest is not None
    tracking = services.ingest.running(kind) if kind else nullcontext()
    try:
        with tracking:  # pict-rs validates before it answers: the whole ingest is inside
            answer = await upstream.forward(
                request.method,
                path,
                request.url.query,
                request.headers,
                request.stream(),
            )
    except Exception as exc:
        log.warning("pict-rs unreachable through the proxy: %s", exc)
        return JSONResponse({"msg": f"pict-rs unreachable: {exc}", "code": "bad-gateway"}, 502)
    return StreamingResponse(
        answer.body,
        status_code=answer.status,
        headers=dict(answer.headers),
        background=BackgroundTask(answer.response.aclose),
    )


for _method in METHODS:  # one route per method: each gets its own OpenAPI operation
    router.add_api_route(
        "/pictrs-proxy/{path:path}",
        proxy,
        methods=[_method],
        operation_id=f"pictrs_proxy_{_method.lower()}",
        responses={
            403: {"description": "Remote fetch blocked by federated.remote_media, or address."},
            502: {"description": "pict-rs could not be reached."},
        },
    )
