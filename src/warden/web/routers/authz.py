"""`GET /authz`: nginx's `auth_request` asks here before passing a Lemmy API call on.

nginx sends the original request's headers (so the `jwt` cookie or the
`Authorization: Bearer` token) plus `X-Original-Method` and `X-Original-URI`
(set by deploy/nginx/warden.conf). Warden maps the request to an activity,
finds out who is asking and judges the rules.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request, Response

from warden.adapters.lemmy.credentials import CredentialKind, Credentials, read_credentials
from warden.adapters.lemmy.forwarding import client_address
from warden.adapters.lemmy.routes import activity_for
from warden.domain.policy import FailMode
from warden.errors import InviteRefused, LemmyRateLimited, UpstreamError
from warden.membership.requirements import Activity, UserFacts
from warden.services.invites import InvitesFeature
from warden.web.deps import ServicesDep

router = APIRouter(tags=["authz"])
PROBE_HEADER = "x-warden-probe"
log = logging.getLogger(__name__)


def request_credentials(request: Request) -> Credentials:
    """The Lemmy login of the original request, read from the raw headers exactly as
    Lemmy reads it (every repeated `Authorization` and `Cookie` header counts; see
    `warden.adapters.lemmy.credentials`)."""
    return read_credentials(request.headers.raw)


def _allow(note: str) -> Response:
    return Response(status_code=204, headers={"X-Warden-Decision": note})


def _refuse(code: str, message: str) -> Response:
    # JSON-escaped (ASCII, no quotes or newlines) so nginx can paste it into a JSON body
    escaped = json.dumps(message, ensure_ascii=True)[1:-1]
    return Response(
        status_code=403,
        headers={"X-Warden-Error": code, "X-Warden-Message": escaped, "Cache-Control": "no-store"},
    )


@router.get("/authz")
async def authz(request: Request, services: ServicesDep) -> Response:
    """204: nginx passes the request on to Lemmy. 403: nginx answers the user with
    the Lemmy-style JSON error built from `X-Warden-Error` / `X-Warden-Message`.

    Requests Warden does not rule on (other methods and paths) and anonymous
    ones (Lemmy refuses those itself) get 204 without asking Lemmy. On a mapped
    activity, a login Lemmy cannot read or does not accept gets 403
    `incorrect_login` (Lemmy's own answer), several logins that disagree 403
    `ambiguous_login`: Warden judges exactly the account Lemmy acts as, or
    refuses. When Lemmy cannot say who is asking, `rules.fail_mode` decides:
    closed (default) answers 403 `lemmy_unavailable`, open answers 204 and logs it.
    """
    if request.headers.get(PROBE_HEADER):  # `warden doctor` checking that nginx asks us
        return _refuse("warden_probe", "nginx asked Warden: the auth_request snippet is active")
    method = request.headers.get("x-original-method", "")
    uri = request.headers.get("x-original-uri", "")
    activity = activity_for(method, uri)
    if activity is None:
        return _allow("pass")
    credentials = request_credentials(request)
    if credentials.kind is CredentialKind.NONE:
        return _allow("anonymous")  # Lemmy refuses it itself (incorrect_login)
    token = credentials.token
    if token is None:  # a login Lemmy cannot read, or several that disagree
        log.info("authz refused %s: %s (%s)", activity.value, credentials.code, credentials.detail)
        return _refuse(credentials.code, credentials.message)
    try:
        major = 1 if services.identity.lemmy.version == "v4" else 0
        client_ip = lemmy_client_ip(request, lemmy_major=major)
        facts = await services.identity.facts(token, client_ip=client_ip)
    except UpstreamError as exc:
        return _upstream_failed(services, activity, exc)
    if facts is None:  # Lemmy does not accept the token: it would refuse the request
        log.info("authz refused %s: Lemmy does not accept the token", activity.value)
        return _refuse(
            "incorrect_login",
            "Lemmy does not accept your login (expired or logged out); log in again.",
        )
    judgement = services.access.decide(activity, facts)
    if judgement.allowed or judgement.reason is None:
        if activity is Activity.CREATE_INVITE and services.invites is not None:
            return await _meter_invite(services.invites, facts)
        return _allow("allow")
    log.info("authz refused %s for %s: %s", activity.value, facts.name, judgement.reason.code)
    return _refuse(judgement.reason.code, judgement.reason.message)


def lemmy_client_ip(request: Request, *, lemmy_major: int = 0) -> str | None:
    """The address Lemmy would rate-limit the original request under (see `forwarding`):
    1.0's actix-web reads `Forwarded: for=` differently from 0.19's, so the detected
    version is passed on (before detection, 0.19's reading)."""
    headers = request.headers
    return client_address(
        headers.getlist("forwarded"),
        headers.get("x-forwarded-for"),
        headers.get("x-real-ip"),
        lemmy_major=lemmy_major,
    )


def _upstream_failed(services: ServicesDep, activity: Activity, exc: UpstreamError) -> Response:
    """Lemmy could not say who is asking (outage, rate limit, an unreadable answer):
    never "anonymous"; `rules.fail_mode` decides (closed by default)."""
    if services.settings.rules.fail_mode is FailMode.OPEN:
        log.warning("authz %s let through, fail-open: %s", activity.value, exc)
        return _allow("fail-open")
    log.warning("authz %s refused, fail-closed: %s", activity.value, exc)
    if isinstance(exc, LemmyRateLimited):
        return _refuse(
            "lemmy_unavailable",
            "Lemmy is rate-limiting requests from your address, so your account cannot "
            "be checked; please wait a minute and try again.",
        )
    return _refuse(
        "lemmy_unavailable",
        "Your account cannot be checked right now; please try again in a moment.",
    )


async def _meter_invite(invites: InvitesFeature, facts: UserFacts) -> Response:
    """Lemmy 1.0 creates invite links itself; each one spends from the monthly balance
    (services/invites.py `meter`), or is refused in Lemmy's error shape."""
    try:
        await invites.service.meter(facts)
    except InviteRefused as exc:
        return _refuse(exc.code, exc.message)
    return _allow("invite-metered")
