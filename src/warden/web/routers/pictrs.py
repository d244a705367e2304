"""`POST /pictrs/validate`: the endpoint pict-rs's `external_validation` calls.

pict-rs POSTs the media as the raw request body and stores it only when the
answer is 2xx; any other status refuses it. Refusals carry a Lemmy-style JSON
body `{"error": code, "message": text}` so logs on both sides say why.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from warden.domain.verdict import Decision
from warden.media.pipeline import ScanContext
from warden.web.deps import ServicesDep

router = APIRouter(tags=["pict-rs"])


@router.post("/pictrs/validate")
async def validate(request: Request, services: ServicesDep) -> JSONResponse:
    """Scan the body; 200 lets pict-rs store the media, 4xx refuses it."""
    data = await request.body()
    context = ScanContext(source="upload", declared_type=request.headers.get("content-type"))
    verdict = await run_in_threadpool(services.scanner.scan, data, context)
    if verdict.decision is Decision.REJECT:
        first = verdict.reasons[0]
        return JSONResponse({"error": first.code, "message": first.message}, status_code=415)
    return JSONResponse({"decision": verdict.decision.value, "sha256": verdict.sha256})
