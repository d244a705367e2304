"""Liveness and readiness, as orchestrators and load balancers expect them.

`/healthz` says only that the process answers (a liveness probe must not kill
a service that is still loading); `/readyz` says it can decide: the model is
loaded.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from warden.web.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """200 when every part needed for a decision is ready, else 503 naming what is not."""
    problems: list[str] = []
    if services.scanner.classifier is None:
        problems.append("model not loaded")
    status = 503 if problems else 200
    return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)
