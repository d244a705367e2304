"""Lemmy 1.0 (API v4), field names as lemmy-js-client 1.0.0-beta.2 defines them.

- `GET /api/v4/account` → MyUserInfo {local_user_view: {local_user: {admin},
  person: {id, name, published_at, post_count, comment_count}, banned},
  moderates: [CommunityModeratorView {community: {id, published_at}}]}
  (LemmyNet/lemmy 1.0.0-beta.1 crates/api/routes/src/lib.rs:360-362). A token
  that logs nobody in is dropped by the session middleware
  (crates/routes/src/middleware/session.rs:68-78) and the handler's
  LocalUserView extractor answers 401 `incorrect_login`
  (crates/db_views/local_user/src/impls.rs:215-224, crates/utils/src/error.rs:229).
  Only that is "not logged in"; 400 is any other error, 429 the rate limit.
- `GET /api/v4/person?username=` → GetPersonDetailsResponse
  {person_view: {person, is_admin, banned}, moderates}

- `POST /api/v4/account/auth/login` Login → LoginResponse {jwt}
- `GET /api/v4/admin/registration_application/list?unread_only=true&limit`
  → PagedResponse {items: [RegistrationApplicationView], next_page}
- `PUT /api/v4/admin/registration_application/approve` {id, approve, deny_reason}
- `POST /api/v4/admin/ban` BanPerson {person_id, ban, remove_or_restore_data, reason}
- `GET /api/v4/modlog?type_=admin_ban` → PagedResponse {items: [ModlogView
  {modlog: {id, kind, is_revert, reason}, target_person}]}, newest first
- `POST /api/v4/account/invite` CreateInvitation {max_uses, expires_at}
  → {invite: LocalUserInvite {token, max_uses, uses_count, expires_at}};
  `DELETE /api/v4/account/invite` RevokeInvitation {token}
- `GET /api/v4/admin/users` → PagedResponse {items: [LocalUserView {local_user:
  {id, person_id, invited_by_local_user_id}, person, banned}]}

In v4 the counts live on Person itself, `published` became `published_at` and
`banned` moved from Person to the views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warden.adapters.lemmy.client import (
    Application,
    BanEvent,
    LemmyApi,
    LocalUserRef,
    NativeInvite,
    error_code,
    moderated_communities,
    parse_time,
)
from warden.errors import LemmyError, LemmyUnavailable
from warden.membership.requirements import UserFacts

#: The error codes with which 1.0 says a token logs nobody in: the extractor's
#: `incorrect_login` (1.0.0-beta.1 crates/db_views/local_user/src/impls.rs:222),
#: and `not_logged_in` (crates/utils/src/error.rs:37) should a handler check itself.
NOT_LOGGED_IN = frozenset({"incorrect_login", "not_logged_in"})


class LemmyV4(LemmyApi):
    version = "v4"
    login_path = "/api/v4/account/auth/login"

    async def my_user(self, token: str, client_ip: str | None = None) -> UserFacts | None:
        status, body = await self._get("/api/v4/account", token, client_ip=client_ip)
        if status == 401 and error_code(body) in NOT_LOGGED_IN:
            return None
        if status != 200 or not isinstance(body, dict):
            code = error_code(body) or "no body"
            raise LemmyUnavailable(f"GET /api/v4/account answered {status} ({code})")
        try:
            view = body["local_user_view"]
            return _facts(
                view["person"], view["local_user"]["admin"], view["banned"], body["moderates"]
            )
        except (KeyError, TypeError) as exc:
            raise LemmyError(f"MyUserInfo lacks {exc}") from None

    async def person(self, username: str, token: str | None = None) -> UserFacts:
        status, body = await self._get("/api/v4/person", token, {"username": username})
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise LemmyError(f"no person {username!r} on Lemmy ({error or status})")
        try:
            view = body["person_view"]
            return _facts(view["person"], view["is_admin"], view["banned"], body["moderates"])
        except (KeyError, TypeError) as exc:
            raise LemmyError(f"GetPersonDetailsResponse lacks {exc}") from None

    async def _pages(self, path: str, token: str, params: dict[str, str]) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(200):
            query = dict(params, limit="50")
            if cursor:
                query["page_cursor"] = cursor
            body = await self._ok("GET", path, token, params=query)
            page = body.get("items") if isinstance(body, dict) else None
            if not page:
                break
            items.extend(page)
            cursor = body.get("next_page")
            if not cursor:
                break
        return items

    async def applications(self, token: str) -> list[Application]:
        views = await self._pages(
            "/api/v4/admin/registration_application/list", token, {"unread_only": "true"}
        )
        out = []
        for view in views:
            try:
                app = view["registration_application"]
                out.append(
                    Application(
                        id=int(app["id"]),
                        person_id=int(view["creator"]["id"]),
                        name=str(view["creator"]["name"]),
                        local_user_id=int(app["local_user_id"]),
                        answer=str(app.get("answer") or ""),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise LemmyError(f"RegistrationApplicationView lacks {exc}") from None
        return out

    async def ban(self, token: str, person_id: int, reason: str, remove_data: bool = False) -> None:
        form = {
            "person_id": person_id,
            "ban": True,
            "reason": reason,
            "remove_or_restore_data": remove_data,
        }
        await self._ok("POST", "/api/v4/admin/ban", token, body=form)

    async def bans(self, token: str, after_id: int) -> list[BanEvent]:
        found: dict[int, BanEvent] = {}
        cursor: str | None = None
        for _ in range(40):
            query = {"type_": "admin_ban", "limit": "50"}
            if cursor:
                query["page_cursor"] = cursor
            body = await self._ok("GET", "/api/v4/modlog", token, params=query)
            views = body.get("items") if isinstance(body, dict) else None
            if not views:
                break
            try:
                events = [
                    BanEvent(
                        id=int(v["modlog"]["id"]),
                        person_id=int(v["target_person"]["id"]),
                        name=str(v["target_person"]["name"]),
                        banned=not bool(v["modlog"].get("is_revert")),
                        reason=str(v["modlog"].get("reason") or ""),
                        local=bool(v["target_person"].get("local", True)),
                    )
                    for v in views
                    if v.get("target_person")
                ]
            except (KeyError, TypeError) as exc:
                raise LemmyError(f"ModlogView lacks {exc}") from None
            found.update({e.id: e for e in events if e.id > after_id})
            cursor = body.get("next_page")
            if not events or min(e.id for e in events) <= after_id or not cursor:
                break
        return [found[i] for i in sorted(found)]

    async def create_invite(
        self, token: str, max_uses: int | None, expires_at: datetime | None
    ) -> NativeInvite:
        form: dict[str, Any] = {}
        if max_uses is not None:
            form["max_uses"] = max_uses
        if expires_at is not None:
            form["expires_at"] = expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = await self._ok("POST", "/api/v4/account/invite", token, body=form)
        try:
            invite = body["invite"]
            return NativeInvite(
                token=str(invite["token"]),
                max_uses=invite.get("max_uses"),
                uses=int(invite.get("uses_count") or 0),
                expires_at=parse_time(invite["expires_at"]) if invite.get("expires_at") else None,
            )
        except (KeyError, TypeError) as exc:
            raise LemmyError(f"CreateInvitationResponse lacks {exc}") from None

    async def revoke_invite(self, token: str, code: str) -> None:
        await self._ok("DELETE", "/api/v4/account/invite", token, body={"token": code})

    async def local_users(self, token: str) -> list[LocalUserRef]:
        out = []
        for view in await self._pages("/api/v4/admin/users", token, {}):
            try:
                local = view["local_user"]
                out.append(
                    LocalUserRef(
                        local_user_id=int(local["id"]),
                        person_id=int(view["person"]["id"]),
                        name=str(view["person"]["name"]),
                        invited_by_local_user_id=local.get("invited_by_local_user_id"),
                        banned=bool(view.get("banned")),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise LemmyError(f"LocalUserView lacks {exc}") from None
        return out


def _facts(person: Any, admin: Any, banned: Any, moderates: Any) -> UserFacts:
    return UserFacts(
        person_id=int(person["id"]),
        name=str(person["name"]),
        published=parse_time(person["published_at"]),
        comments=int(person["comment_count"]),
        posts=int(person["post_count"]),
        admin=bool(admin),
        banned=bool(banned),
        moderates=moderated_communities(moderates, "published_at"),
    )
