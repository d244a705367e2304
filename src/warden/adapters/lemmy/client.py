"""The Lemmy API as Warden uses it: one interface, one implementation per API version.

Lemmy 0.19.x speaks API v3, Lemmy 1.0 speaks v4; paths and field names differ
(they follow lemmy-js-client's `dist/types` for 0.19.9 and 1.0.0-beta.2).
Warden needs: the facts about the person behind a token, and the facts about
a person by name (for `warden rules check`); for invites, a login forwarded
from the /invites page, registration applications (list, approve, deny), bans
(make one, read them from the modlog) and, on 1.0, the native invite links and
the local users' `invited_by_local_user_id`. `LemmyApi` is that interface;
`LemmyV3`/`LemmyV4` implement it; `AutoLemmy` asks Lemmy which version it
speaks on first use and delegates.

Tokens travel only in the `Authorization: Bearer` header of the request that
needs them and are never logged.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from warden.errors import LemmyError, LemmyRefused, LemmyUnavailable
from warden.membership.requirements import UserFacts

#: Statuses with which Lemmy refuses a token (absent, expired, revoked): the
#: request is then anonymous as far as Warden is concerned.
TOKEN_REFUSED = frozenset({400, 401, 403})


def parse_time(value: object) -> datetime:
    """Lemmy's timestamps (`2024-01-02T03:04:05.123456Z`; naive ones are UTC)."""
    if not isinstance(value, str):
        raise LemmyError(f"Lemmy sent a timestamp that is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise LemmyError(f"Lemmy sent an unreadable timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def community_ids(moderates: object) -> tuple[int, ...]:
    """Ids from a list of CommunityModeratorView (same shape in v3 and v4)."""
    if not isinstance(moderates, list):
        return ()
    return tuple(int(m["community"]["id"]) for m in moderates)


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
    async def my_user(self, token: str) -> UserFacts | None:
        """The facts of the person the token belongs to; None when Lemmy refuses the token."""

    @abstractmethod
    async def person(self, username: str, token: str | None = None) -> UserFacts:
        """The facts of a person by name (raises LemmyError when there is none)."""

    # -- invites and accountability (the bot's admin token, or the user's own) -----

    login_path: str

    async def login(self, username_or_email: str, password: str, totp: str | None = None) -> str:
        """A session token for these credentials (raises LemmyRefused, e.g. incorrect_login).
        Login and LoginResponse are the same in v3 and v4; only the path differs."""
        form: dict[str, Any] = {"username_or_email": username_or_email, "password": password}
        if totp:
            form["totp_2fa_token"] = totp
        body = await self._ok("POST", self.login_path, None, body=form)
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
        self, path: str, token: str | None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await self._call("GET", path, token, params=params)

    async def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self.http.request(
                method, path, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise LemmyUnavailable(f"Lemmy did not answer {path}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise LemmyUnavailable(f"Lemmy answered {path} with {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise LemmyError(f"Lemmy answered {path} with something that is not JSON") from None
        return response.status_code, payload

    async def _ok(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The body of a 200 answer; Lemmy's own error otherwise, as LemmyRefused."""
        status, payload = await self._call(method, path, token, params=params, body=body)
        if status != 200:
            code = payload.get("error", "") if isinstance(payload, dict) else ""
            raise LemmyRefused(f"{method} {path} answered {status} {code}".strip(), str(code))
        return payload


class AutoLemmy(LemmyApi):
    """Detects the API version on first use (GET /api/v4/site, else /api/v3/site)."""

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

    async def my_user(self, token: str) -> UserFacts | None:
        return await (await self.chosen()).my_user(token)

    async def person(self, username: str, token: str | None = None) -> UserFacts:
        return await (await self.chosen()).person(username, token)

    async def login(self, username_or_email: str, password: str, totp: str | None = None) -> str:
        return await (await self.chosen()).login(username_or_email, password, totp)

    async def applications(self, token: str) -> list[Application]:
        return await (await self.chosen()).applications(token)

    async def decide_application(
        self, token: str, application_id: int, approve: bool, deny_reason: str | None = None
    ) -> None:
        await (await self.chosen()).decide_application(token, application_id, approve, deny_reason)

    async def ban(self, token: str, person_id: int, reason: str, remove_data: bool = False) -> None:
        await (await self.chosen()).ban(token, person_id, reason, remove_data)

    async def bans(self, token: str, after_id: int) -> list[BanEvent]:
        return await (await self.chosen()).bans(token, after_id)

    async def create_invite(
        self, token: str, max_uses: int | None, expires_at: datetime | None
    ) -> NativeInvite:
        return await (await self.chosen()).create_invite(token, max_uses, expires_at)

    async def revoke_invite(self, token: str, code: str) -> None:
        await (await self.chosen()).revoke_invite(token, code)

    async def local_users(self, token: str) -> list[LocalUserRef]:
        return await (await self.chosen()).local_users(token)


async def detect(http: httpx.AsyncClient) -> LemmyApi:
    """The implementation for the API the Lemmy at `http.base_url` speaks."""
    from warden.adapters.lemmy.v3 import LemmyV3
    from warden.adapters.lemmy.v4 import LemmyV4

    for api in (LemmyV4(http), LemmyV3(http)):
        status, body = await api._get(f"/api/{api.version}/site", None)
        if status == 200 and isinstance(body, dict) and "site_view" in body:
            return api
    raise LemmyUnavailable("Lemmy answers neither /api/v4/site nor /api/v3/site")


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
