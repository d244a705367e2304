"""How a gate outcome becomes an HTTP answer, and reading bounded bodies.

Refusals are Lemmy-style `{"error": code, "message": text}`: 413 for a body
over the limit, 503 when Warden could not decide (and fails closed), 422 for
media refused by policy, labels, hash banks or its format.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from warden.domain.verdict import Verdict
from warden.errors import MediaTooLarge

#: Codes that mean "Warden could not decide", not "this media is refused".
UNDECIDED = frozenset({"scan_timeout", "model_unavailable", "store_error", "scan_error"})


def refusal_status(verdict: Verdict) -> int:
    code = verdict.reasons[0].code if verdict.reasons else "scan_error"
    if code == "file_too_large":
        return 413
    return 503 if code in UNDECIDED else 422


def error(code: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing (MediaTooLarge) as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise MediaTooLarge(f"the body is larger than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
