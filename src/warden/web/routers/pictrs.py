"""`POST /pictrs/validate`: the endpoint pict-rs's `external_validation` calls.

pict-rs POSTs the media it is about to store (after its own processing: the
bytes it stored, streamed chunked, with the output format's Content-Type) for
user uploads and for remote images Lemmy asks it to cache alike
(robinst/pict-rs 31049d3 = v0.5.16 src/ingest.rs:195-213; 07d6231 = v0.5.6
src/ingest.rs:186-204), and stores it only when the answer is 2xx. Any other
status becomes pict-rs's own 400 `failed-external-validation`
(src/error.rs:175, :216, :276); our JSON body reaches only Warden's own log.

Uploads through the ingest proxy were scanned there, with the uploader known
(services/uploads.py). When pict-rs sends the same bytes (SHA-256) while that
upload is forwarded, the hook answers from the proxy's decision instead of
classifying twice, and logs its own row linked to it (`linked_decision_id`, with
the account and address). Bytes pict-rs re-encoded match nothing and are scanned
in full; they are attributed when only one proxied upload is in flight.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from warden.domain.verdict import Decision
from warden.errors import BodyTimeout, MediaTooLarge
from warden.media import hashing
from warden.media.pipeline import ScanContext
from warden.services import Services
from warden.web.answers import declared_length, error, read_capped, refusal_status
from warden.web.deps import ServicesDep
from warden.web.peers import client_address, in_networks, networks

router = APIRouter(tags=["pict-rs"])


def presented_secrets(request: Request, query_secret: str | None) -> list[str]:
    """Every secret the caller presented: the HTTP Basic password (pict-rs 0.5's reqwest
    moves a URL's `user:password@` into `Authorization: Basic` and drops it from the
    URL: seanmonstar/reqwest v0.11.24 and v0.12.4 src/async_impl/request.rs:164-176,
    :572-597, under reqwest-middleware's `request`), an X-Warden-Secret header, and
    `?secret=` (pict-rs 0.4's client sends only the URL; `warden serve` redacts it
    from the access log)."""
    found = list(request.headers.getlist("x-warden-secret"))
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if ":" in decoded:
            found.append(decoded.partition(":")[2])
    if query_secret is not None:
        found.append(query_secret)
    return found


def _allowed(services: Services, request: Request, secret: str | None) -> bool:
    server = services.settings.server
    if server.pictrs_secret is not None:
        expected = server.pictrs_secret.get_secret_value().encode()
        given = presented_secrets(request, secret)
        if not any(hmac.compare_digest(value.encode(), expected) for value in given):
            return False
    return not server.pictrs_allow_from or client_in(request, server.pictrs_allow_from)


def client_in(request: Request, allowed: list[str]) -> bool:
    """True when the client (web/peers.py: the TCP peer, or behind one of
    server.trusted_proxies the rightmost untrusted X-Forwarded-For address) is in one
    of the `allowed` networks.

    Lemmy forwards every header of the uploader to pict-rs and adds its own
    `X-Forwarded-For: <peer ip:port>` (LemmyNet/lemmy 0.19.3
    crates/routes/src/images.rs:69-90 and :107; 1.0 main
    crates/routes/src/images/utils.rs:17-40 and upload.rs:227), so that header
    says who uploaded, not who is calling: it is read only from trusted proxies,
    and `warden serve` runs uvicorn with proxy_headers off (web/listeners.py).
    """
    return in_networks(client_address(request), networks(allowed))


@router.post(
    "/pictrs/validate",
    responses={
        200: {"description": "Accepted: pict-rs stores the media."},
        403: {"description": "Wrong secret or address: pict-rs refuses the media."},
        408: {"description": "The body came slower than server.body_timeout_s: refused, logged."},
        413: {"description": "Larger than media.max_bytes: pict-rs refuses it."},
        422: {"description": "Refused by policy, labels, hash banks or format."},
        503: {"description": "No decision (timeout, model, database) and failing closed."},
    },
)
async def validate(
    request: Request,
    services: ServicesDep,
    secret: str | None = Query(
        None,
        description="Shared secret when server.pictrs_secret is set, for pict-rs 0.4 (0.5 sends it as the Basic password from the URL's user info).",
    ),
    source: str | None = Query(
        None,
        pattern="^(upload|remote)$",
        description="Overrides what Warden's ingest proxy says this media is.",
    ),
) -> JSONResponse:
    """Scan the body; 200 lets pict-rs store the media, anything else refuses it."""
    if not _allowed(services, request, secret):
        return error("forbidden", "this address or secret may not use /pictrs/validate", 403)
    gate = services.gate
    origin = source or services.ingest.source()
    context = ScanContext(source=origin, declared_type=request.headers.get("content-type"))
    if origin == "remote" and services.settings.federated.remote_media == "block":
        outcome = await gate.refuse_unread(
            context,
            "remote_blocked",
            "remote media is not stored on this instance (federated.remote_media = block)",
            declared_length(request) or 0,
            {},
        )
        first = outcome.verdict.reasons[0]
        return error(first.code, first.message, 422)
    limit = services.settings.media.max_bytes
    declared = declared_length(request)
    try:
        if declared is not None and declared > limit:
            raise MediaTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        data = await read_capped(request, limit)
    except MediaTooLarge as exc:
        outcome = await gate.refuse_unread(
            context, exc.code, exc.message, declared or limit + 1, {"limit": limit}
        )
    except BodyTimeout as exc:
        # a body slower than server.body_timeout_s (web/deadlines.py): logged like
        # every other refusal, then 408; pict-rs refuses the media
        timeout = services.settings.server.body_timeout_s
        await gate.refuse_unread(
            context, exc.code, exc.message, declared or 0, {"timeout_s": timeout}
        )
        return error(exc.code, exc.message, 408)
    else:
        # Lemmy waits 10 s for a remote fetch and 30 s for an upload
        # (ServerSettings.deadline_*_ms): each source gets its own deadline
        deadline = services.settings.server.hook_deadline_s(origin)
        screen = services.uploads
        digest = hashing.sha256(data)
        found = screen.claim(digest, guess=origin == "upload") if origin != "remote" else None
        if found is not None and found[0].sha256 == digest:
            entry, decided = found  # the proxy decided these very bytes: no second scan
            upload = ScanContext(source="upload", declared_type=context.declared_type)
            linked = screen.linked(decided, entry.decision_id)
            outcome = await gate.answer_from(decided.verdict, upload, linked)
        elif found is not None:  # re-encoded by pict-rs: scanned, attributed to the upload
            entry, decided = found
            upload = ScanContext(source="upload", declared_type=context.declared_type)
            linked = screen.linked(decided, entry.decision_id)
            outcome = await gate.check(data, upload, deadline_s=deadline, attribution=linked)
        else:
            outcome = await gate.check(data, context, deadline_s=deadline)
    verdict = outcome.verdict
    if verdict.decision is Decision.REJECT:
        first = verdict.reasons[0]
        return error(first.code, first.message, refusal_status(verdict))
    return JSONResponse(
        {"decision": verdict.decision.value, "sha256": verdict.sha256, "id": outcome.decision_id}
    )
