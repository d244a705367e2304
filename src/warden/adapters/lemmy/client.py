"""The Lemmy API as Warden uses it: one interface, one implementation per API version.

Longer than ~400 lines: the interface and the version detection that every
implementation shares stay together (v3.py and v4.py hold only what differs).

Lemmy 0.19.x speaks API v3, Lemmy 1.0 speaks v4; paths and field names differ
(they follow lemmy-js-client's `dist/types` for 0.19.9 and 1.0.0-beta.2).
Warden needs: the facts about the person behind a token, and the facts about
a person by name (for `warden rules check`); for invites, a login forwarded
from the /invites page, registration applications (list, approve, deny), bans
(make one, read them from the modlog) and, on 1.0, the native invite links and
the local users' `invited_by_local_user_id`. `LemmyApi` is that interface;
`LemmyV3`/`LemmyV4` implement it; `AutoLemmy` asks Lemmy which version it
speaks on first use, delegates, and asks again when the chosen version's
routes disappear (an in-place upgrade or downgrade).

How Lemmy answers, from its source (the Lemmy double in tests/ reproduces it):

- An unknown route is a 404 with an empty body: actix-web's default service
  (actix/actix-web web-v4.4.0 actix-web/src/app_service.rs:65-69, web-v4.13.0
  :67-71), passed through untouched by Lemmy's `jsonify_plain_text_errors`
  because it carries no error object (LemmyNet/lemmy 0.19.3
  crates/utils/src/response.rs:7-12; 1.0.0-beta.1 crates/utils/src/response.rs:12-18).
  So Lemmy 0.19 answers `/api/v4/*` that way, and 1.0 answers `/api/v3/user`
  that way: `LemmyApiMismatch`.
- Lemmy's own errors are JSON `{"error": "<snake_case code>"}` (0.19.3
  crates/utils/src/error.rs:68-69 and :76; 1.0.0-beta.1 crates/utils/src/error.rs:9,
  :176-182 and :235-236), with status 401 for `incorrect_login`, 404 for a row
  not found and 400 for everything else (0.19.3 error.rs:57-66; 0.19.5
  error.rs:230-239; 1.0.0-beta.1 error.rs:226-233).
- The per-IP rate limit answers 400 `rate_limit_error` on 0.19 (0.19.3
  crates/utils/src/rate_limit/mod.rs:191-198, error.rs:163) and 429
  `too_many_requests` on 1.0 (actix-extensible-rate-limit, Lemmy 1.0.0-beta.1
  crates/utils/src/rate_limit/mod.rs:88-92; JSON body from
  crates/utils/src/response.rs:13 and :30-31): `LemmyRateLimited`, never an
  answer about the token. Look-ups carry the user's address
  (`X-Forwarded-For`, see `forwarding`) so they are charged to the user's bucket.

Tokens travel only in the `Authorization: Bearer` header of the request that
needs them and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from warden.errors import (
    LemmyApiMismatch,
    LemmyError,
    LemmyRateLimited,
    LemmyRefused,
    LemmyUnavailable,
)
from warden.membership.requirements import ModeratedCommunity, UserFacts

log = logging.getLogger(__name__)
T = TypeVar("T")
_NOT_JSON = object()  # a body that is there but is not JSON


def error_code(payload: object) -> str:
    """Lemmy's error code from an error body (`{"error": "not_logged_in"}`), else ""."""
    code = payload.get("error") if isinstance(payload, dict) else None
    return code if isinstance(code, str) else ""


def major_version(version: object) -> int | None:
    """The major number of Lemmy's `version` string ("0.19.5" -> 0, "1.0.0-beta.1" -> 1)."""
    if not isinstance(version, str):
        return None
    head = version.strip().lstrip("v").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def parse_time(value: object) -> datetime:
    """Lemmy's timestamps (`2024-01-02T03:04:05.123456Z`; naive ones are UTC)."""
    if not isinstance(value, str):
        raise LemmyError(f"Lemmy sent a timestamp that is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise LemmyError(f"Lemmy sent an unreadable timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def moderated_communities(moderates: object, published: str) -> tuple[ModeratedCommunity, ...]:
    """The communities in a list of CommunityModeratorView {community, moderator}.

    `published` names the community's creation time: `published` in v3
    (lemmy-js-client 0.19.9 src/types/Community.ts:12), `published_at` in v4
    (lemmy-js-client 1.0.0-beta.1 src/types/Community.ts:25).
    """
    if not isinstance(moderates, list):
        return ()
    out = []
    for view in moderates:
        community = view["community"]
        stamp = community.get(published)
        out.append(ModeratedCommunity(int(community["id"]), parse_time(stamp) if stamp else None))
    return tuple(out)


@dataclass(frozen=True)
class Application:
    """An unread registration application (RegistrationApplicationView)."""

    id: int
    person_id: int
    name: str
    local_user_id: int
    answer: str


@dataclass(frozen=True)
class BanEvent:
    """A site ban or unban from the modlog; `id` orders them."""

    id: int
    person_id: int
    name: str
    banned: bool
    reason: str
    local: bool


@dataclass(frozen=True)
class NativeInvite:
    """A Lemmy 1.0 invite link (LocalUserInvite)."""

    token: str
    max_uses: int | None
    uses: int
    expires_at: datetime | None


@dataclass(frozen=True)
class LocalUserRef:
    """A local user with whoever invited them (Lemmy 1.0's `invited_by_local_user_id`)."""

    local_user_id: int
    person_id: int
    name: str
    invited_by_local_user_id: int | None
    banned: bool


class LemmyApi(ABC):
    """What Warden asks Lemmy, whatever version it runs."""

    version: str

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @abstractmethod
    async def my_user(self, token: str, client_ip: str | None = None) -> UserFacts | None:
        """The facts of the person the token belongs to.

        None only when Lemmy definitely says the token logs nobody in (unknown,
        revoked, or its person banned or deleted). Any other answer (rate
        limit, 4xx, 5xx, a body Warden cannot read) raises an UpstreamError:
        nobody is ever taken for anonymous because Lemmy could not answer.
        `client_ip` is forwarded so Lemmy charges the user's rate-limit bucket.
        """

    @abstractmethod
    async def person(self, username: str, token: str | None = None) -> UserFacts:
        """The facts of a person by name (raises LemmyError when there is none)."""

    # -- invites and accountability (the bot's admin token, or the user's own) -----

    login_path: str

    async def login(
        self,
        username_or_email: str,
        password: str,
        totp: str | None = None,
        client_ip: str | None = None,
    ) -> str:
        """A session token for these credentials (raises LemmyRefused, e.g. incorrect_login).
        Login and LoginResponse are the same in v3 and v4; only the path differs.
        `client_ip` is forwarded: Lemmy limits logins per address (its `register`
        bucket, 3 an hour by default), which must be the user's, not Warden's."""
        form: dict[str, Any] = {"username_or_email": username_or_email, "password": password}
        if totp:
            form["totp_2fa_token"] = totp
        body = await self._ok("POST", self.login_path, None, body=form, client_ip=client_ip)
        if not isinstance(body, dict) or not body.get("jwt"):
            raise LemmyRefused("Lemmy gave no session for that login", "no_jwt")
        return str(body["jwt"])

    @abstractmethod
    async def applications(self, token: str) -> list[Application]:
        """Every unread registration application."""

    async def decide_application(
        self, token: str, application_id: int, approve: bool, deny_reason: str | None = None
    ) -> None:
        """Approve or deny one application (ApproveRegistrationApplication, same in v3 and v4)."""
        form: dict[str, Any] = {"id": application_id, "approve": approve}
        if deny_reason and not approve:
            form["deny_reason"] = deny_reason
        path = f"/api/{self.version}/admin/registration_application/approve"
        await self._ok("PUT", path, token, body=form)

    @abstractmethod
    async def ban(self, token: str, person_id: int, reason: str, remove_data: bool = False) -> None:
        """Ban a person from the site."""

    @abstractmethod
    async def bans(self, token: str, after_id: int) -> list[BanEvent]:
        """Site bans and unbans from the modlog with an id above `after_id`, oldest first."""

    async def create_invite(
        self, token: str, max_uses: int | None, expires_at: datetime | None
    ) -> NativeInvite:
        """Create a native invite link (Lemmy 1.0 only)."""
        raise LemmyError(f"Lemmy API {self.version} has no native invites")

    async def revoke_invite(self, token: str, code: str) -> None:
        raise LemmyError(f"Lemmy API {self.version} has no native invites")

    async def local_users(self, token: str) -> list[LocalUserRef]:
        """Every local user with its inviter (Lemmy 1.0 only)."""
        raise LemmyError(f"Lemmy API {self.version} does not record inviters")

    async def _get(
        self,
        path: str,
        token: str | None,
        params: dict[str, str] | None = None,
        *,
        client_ip: str | None = None,
    ) -> tuple[int, Any]:
        return await self._call("GET", path, token, params=params, client_ip=client_ip)

    async def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        client_ip: str | None = None,
    ) -> tuple[int, Any]:
        """(status, JSON body) of one call; raises for what is never an answer.

        5xx and no connection: LemmyUnavailable. Lemmy's rate limit (0.19: 400
        `rate_limit_error`, 1.0: 429): LemmyRateLimited. A 404 that is not one
        of Lemmy's JSON errors (actix's empty-body "no such route"):
        LemmyApiMismatch. A body that is not JSON: LemmyError.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        try:
            response = await self.http.request(
                method, path, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise LemmyUnavailable(f"Lemmy did not answer {path}: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500:
            raise LemmyUnavailable(f"Lemmy answered {path} with {status}")
        if status == 429:
            raise LemmyRateLimited(f"Lemmy rate-limited {method} {path} (429)")
        try:
            payload = response.json() if response.content.strip() else None
        except ValueError:
            payload = _NOT_JSON
        if status == 404 and not error_code(payload):
            raise LemmyApiMismatch(f"Lemmy has no route {method} {path} (API {self.version})")
        if payload is _NOT_JSON:
            raise LemmyError(f"Lemmy answered {path} with something that is not JSON")
        if error_code(payload) == "rate_limit_error":
            raise LemmyRateLimited(f"Lemmy rate-limited {method} {path} ({status})")
        return status, payload

    async def _ok(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        client_ip: str | None = None,
    ) -> Any:
        """The body of a 200 answer; Lemmy's own error otherwise, as LemmyRefused."""
        status, payload = await self._call(
            method, path, token, params=params, body=body, client_ip=client_ip
        )
        if status != 200:
            code = payload.get("error", "") if isinstance(payload, dict) else ""
            raise LemmyRefused(f"{method} {path} answered {status} {code}".strip(), str(code))
        return payload


class AutoLemmy(LemmyApi):
    """Detects the API version on first use, and again when it stops fitting.

    Detection prefers v4: Lemmy 1.0 still serves much of `/api/v3`, but its
    compatibility layer reports every user as `admin: false` with `moderates: []`
    (LemmyNet/lemmy 1.0.0-beta.1 crates/api/routes_v3/src/convert.rs:165 and
    :348), so v3 must never be used against 1.0. When a call of the chosen
    version meets `LemmyApiMismatch` (its route is gone: an in-place upgrade
    0.19 -> 1.0 or a downgrade; or `/api/v3/site` now reports version 1.x),
    the version is detected again and the call is made once more.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        super().__init__(http)
        self._chosen: LemmyApi | None = None
        self._lock = asyncio.Lock()

    @property
    def version(self) -> str:  # type: ignore[override]
        return self._chosen.version if self._chosen else "unknown"

    async def chosen(self) -> LemmyApi:
        if self._chosen is None:
            async with self._lock:
                if self._chosen is None:
                    self._chosen = await detect(self.http)
        return self._chosen

    async def _each(self, call: Callable[[LemmyApi], Awaitable[T]]) -> T:
        api = await self.chosen()
        try:
            return await call(api)
        except LemmyApiMismatch as exc:
            async with self._lock:
                if self._chosen is api:
                    log.warning(
                        "Lemmy no longer speaks API %s (%s); detecting again", api.version, exc
                    )
                    self._chosen = None
        return await call(await self.chosen())

    async def my_user(self, token: str, client_ip: str | None = None) -> UserFacts | None:
        return await self._each(lambda api: api.my_user(token, client_ip))

    async def person(self, username: str, token: str | None = None) -> UserFacts:
        return await self._each(lambda api: api.person(username, token))

    async def login(
        self,
        username_or_email: str,
        password: str,
        totp: str | None = None,
        client_ip: str | None = None,
    ) -> str:
        return await self._each(lambda api: api.login(username_or_email, password, totp, client_ip))

    async def applications(self, token: str) -> list[Application]:
        return await self._each(lambda api: api.applications(token))

    async def decide_application(
        self, token: str, application_id: int, approve: bool, deny_reason: str | None = None
    ) -> None:
        await self._each(
            lambda api: api.decide_application(token, application_id, approve, deny_reason)
        )

    async def ban(self, token: str, person_id: int, reason: str, remove_data: bool = False) -> None:
        await self._each(lambda api: api.ban(token, person_id, reason, remove_data))

    async def bans(self, token: str, after_id: int) -> list[BanEvent]:
        return await self._each(lambda api: api.bans(token, after_id))

    async def create_invite(
        self, token: str, max_uses: int | None, expires_at: datetime | None
    ) -> NativeInvite:
        return await self._each(lambda api: api.create_invite(token, max_uses, expires_at))

    async def revoke_invite(self, token: str, code: str) -> None:
        await self._each(lambda api: api.revoke_invite(token, code))

    async def local_users(self, token: str) -> list[LocalUserRef]:
        return await self._each(lambda api: api.local_users(token))


def _is_site(body: object) -> bool:
    return isinstance(body, dict) and "site_view" in body


async def detect(http: httpx.AsyncClient) -> LemmyApi:
    """The implementation for the API the Lemmy at `http.base_url` speaks.

    `GET /api/v4/site` answers 200 on 1.0 (1.0.0-beta.1
    crates/api/routes/src/lib.rs:195-200) and is an unknown route on 0.19 (404,
    empty body: see the module docstring); only then is `/api/v3/site` asked
    (0.19.3 src/api_routes_http.rs:137-141). Anything else (rate limit, 5xx,
    a body that is not a site) is an outage, never a guess.
    """
    from warden.adapters.lemmy.v3 import LemmyV3
    from warden.adapters.lemmy.v4 import LemmyV4

    v4, v3 = LemmyV4(http), LemmyV3(http)
    try:
        status, body = await v4._get("/api/v4/site", None)
    except LemmyApiMismatch:
        status, body = 404, None
    if status == 200 and _is_site(body):
        return v4
    if status != 404:
        raise LemmyUnavailable(f"Lemmy answered GET /api/v4/site with {status}, not a site")
    try:
        status, body = await v3._get("/api/v3/site", None)
    except LemmyApiMismatch:
        raise LemmyUnavailable("Lemmy answers neither /api/v4/site nor /api/v3/site") from None
    if status == 200 and _is_site(body):
        major = major_version(body.get("version"))
        if major is not None and major >= 1:
            raise LemmyUnavailable(
                f"Lemmy {body.get('version')} answers /api/v3/site but not /api/v4/site"
            )
        return v3
    raise LemmyUnavailable(f"Lemmy answered GET /api/v3/site with {status}, not a site")


def build_lemmy(
    base_url: str, api: str = "auto", *, timeout_s: float = 3.0, max_connections: int = 100
) -> LemmyApi:
    """A client for the Lemmy at `base_url`; `api` is auto, v3 or v4."""
    from warden.adapters.lemmy.v3 import LemmyV3
    from warden.adapters.lemmy.v4 import LemmyV4

    http = httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        timeout=timeout_s,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        headers={"User-Agent": "warden"},
    )
    if api == "v3":
        return LemmyV3(http)
    if api == "v4":
        return LemmyV4(http)
    return AutoLemmy(http)
