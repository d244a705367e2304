"""`/api/v1`: the media gate for other callers, and admin actions. Scoped bearer tokens.

Tokens are made with `warden tokens create NAME [--scope scan|admin]`; a
missing, unknown or revoked token gets 401 `unauthorized`, a token without the
route's scope 403 `forbidden` (`/scan` needs `scan`, `/admin/*` needs `admin`).

CSAM-bank names, entry ids and matched hashes never leave Warden through this
API (they stay in the decisions log and the evidence export): a verdict that
matched a CSAM bank says `hash_match` and nothing about which list or entry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from warden.errors import ConfigError, MediaTooLarge
from warden.media.pipeline import ScanContext
from warden.web.answers import declared_length, error, read_capped
from warden.web.deps import AdminTokenDep, ScanTokenDep, ServicesDep, Unauthorized
from warden.web.disclosure import public_verdict
from warden.web.schemas import ErrorOut, ReloadOut, VerdictOut

router = APIRouter(prefix="/api/v1", tags=["api"])
__all__ = ["Unauthorized", "router", "unauthorized_handler"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "bad_multipart: the multipart body cannot be read."},
    401: {"model": ErrorOut, "description": "unauthorized: missing, unknown or revoked token."},
    403: {"model": ErrorOut, "description": "forbidden: the token lacks the route's scope."},
    413: {"model": ErrorOut, "description": "file_too_large: over media.max_bytes."},
}
_SCAN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post(
    "/scan",
    response_model=VerdictOut,
    responses=_ERRORS,
    openapi_extra=_SCAN_BODY,
)
async def scan(request: Request, services: ServicesDep, token: ScanTokenDep) -> Any:
    """Scan the media in the body (raw, or multipart field `file`) and answer the verdict.

    Needs a token with the `scan` scope. 200 carries the decision whatever it
    is; the caller acts on `decision`. The decision is logged (source `api`,
    uploader = the token's name) first. A match in a CSAM bank is reported as
    `hash_match` without the bank, the entry or the matched hash.
    """
    gate = services.gate
    assert gate is not None
    limit = services.settings.media.max_bytes
    declared = declared_length(request)
    content_type = request.headers.get("content-type", "")
    try:
        if declared is not None and declared > limit + 64 * 1024:
            raise MediaTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        if content_type.startswith("multipart/form-data"):
            data, content_type = await _multipart_file(request, limit)
        else:
            data = await read_capped(request, limit)
    except MediaTooLarge as exc:
        return error(exc.code, exc.message, 413)
    except _BadMultipart as exc:
        return error("bad_multipart", str(exc), 400)
    context = ScanContext(source="api", declared_type=content_type, uploader=f"token:{token.name}")
    outcome = await gate.check(data, context)
    return {"id": outcome.decision_id, **public_verdict(outcome.verdict.as_dict())}


class _BadMultipart(Exception):
    pass


async def _multipart_file(request: Request, limit: int) -> tuple[bytes, str]:
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=limit)
    except Exception as exc:
        raise _BadMultipart(f"the multipart body cannot be read: {exc}") from exc
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        await form.close()
        raise _BadMultipart("the multipart body has no file field named 'file'")
    try:
        data = await upload.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise MediaTooLarge(f"the file is larger than the {limit}-byte limit")
    return data, upload.content_type or ""


@router.post(
    "/admin/reload",
    response_model=ReloadOut,
    responses={
        401: _ERRORS[401],
        403: _ERRORS[403],
        422: {"model": ErrorOut, "description": "config_error: settings kept."},
    },
)
async def reload(services: ServicesDep, token: AdminTokenDep) -> Any:
    """Re-read settings and rules: new thresholds and failure modes apply to the next scan.

    Needs a token with the `admin` scope. A config that does not load answers
    422 `config_error` and changes nothing.
    """
    try:
        version = await asyncio.to_thread(services.reload)
    except ConfigError as exc:
        return error(exc.code, exc.message, 422)
    return {"config_version": version}


def unauthorized_handler(request: Request, exc: Exception) -> JSONResponse:
    """401 `unauthorized` (no usable token) or 403 `forbidden` (a token without the scope)."""
    refusal = exc if isinstance(exc, Unauthorized) else Unauthorized()
    response = error(refusal.code, refusal.message, refusal.status)
    if refusal.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response
