"""Liveness, readiness and metrics, as orchestrators and Prometheus expect them.

`/healthz` says only that the process answers (a liveness probe must not kill
a service that is still loading); `/readyz` says it can decide: the model is
loaded and the database answers. `/metrics` is Prometheus' text format.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from warden.web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 when every part needed for a decision is ready, else 503 naming what is not;
    a load balancer sends traffic only to replicas that answer 200."""
    problems: list[str] = []
    if services.scanner.classifier is None:
        problems.append("model not loaded")
    if not await asyncio.to_thread(services.database.ping):
        problems.append("database unreachable")
    status = 503 if problems else 200
    return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)


@router.get("/metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Prometheus scrape: decisions by result and reason, scan latency, queue depth."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
