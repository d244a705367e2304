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

from warden.errors import BodyTimeout, InputError, MediaTooLarge
from warden.media.pipeline import ScanContext
from warden.web.answers import declared_length, read_capped
from warden.web.deps import AdminTokenDep, GateDep, ScanTokenDep, ServicesDep, SettingsDep
from warden.web.disclosure import public_verdict
from warden.web.schemas import ErrorOut, ReloadOut, VerdictOut

router = APIRouter(prefix="/api/v1", tags=["api"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "bad_multipart: the multipart body cannot be read."},
    401: {"model": ErrorOut, "description": "unauthorized: missing, unknown or revoked token."},
    403: {"model": ErrorOut, "description": "forbidden: the token lacks the route's scope."},
    408: {"model": ErrorOut, "description": "body_timeout: the body came too slowly (logged)."},
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
async def scan(request: Request, gate: GateDep, settings: SettingsDep, token: ScanTokenDep) -> Any:
    """Scan the media in the body (raw, or multipart field `file`) and answer the verdict.

    Needs a token with the `scan` scope. 200 carries the decision whatever it
    is; the caller acts on `decision`. The decision is logged (source `api`,
    uploader = the token's name) first; a body slower than `server.body_timeout_s`
    is logged as a `body_timeout` refusal, then answered 408. A match in a CSAM
    bank is reported as `hash_match` without the bank, the entry or the matched hash.
    """
    limit = settings.media.max_bytes
    declared = declared_length(request)
    content_type = request.headers.get("content-type", "")
    context = ScanContext(source="api", declared_type=content_type, uploader=f"token:{token.name}")
    if declared is not None and declared > limit + 64 * 1024:
        raise MediaTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    try:
        if content_type.startswith("multipart/form-data"):
            data, content_type = await _multipart_file(request, limit)
        else:
            data = await read_capped(request, limit)
    except BodyTimeout as exc:
        detail = {"timeout_s": settings.server.body_timeout_s}
        await gate.refuse_unread(context, exc.code, exc.message, declared or 0, detail)
        raise
    context = ScanContext(source="api", declared_type=content_type, uploader=f"token:{token.name}")
    outcome = await gate.check(data, context)
    return {"id": outcome.decision_id, **public_verdict(outcome.verdict.as_dict())}


async def _multipart_file(request: Request, limit: int) -> tuple[bytes, str]:
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=limit)
    except BodyTimeout:
        raise
    except Exception as exc:
        raise InputError(f"the multipart body cannot be read: {exc}", code="bad_multipart") from exc
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        await form.close()
        raise InputError("the multipart body has no file field named 'file'", code="bad_multipart")
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
    422 `config_error` (or `bad_rules`) and changes nothing.
    """
    version = await asyncio.to_thread(services.reload)
    return {"config_version": version}
