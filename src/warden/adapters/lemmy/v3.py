"""Lemmy 0.19.x (API v3), field names as lemmy-js-client 0.19.9 defines them.

- `GET /api/v3/site` → GetSiteResponse.my_user: MyUserInfo
  {local_user_view: {local_user: {admin}, person: {id, name, published, banned},
  counts: {post_count, comment_count}}, moderates: [CommunityModeratorView
  {community: {id, published}}]}. It never refuses a token: Lemmy's session
  middleware drops a token it cannot use (bad signature, revoked, banned or
  deleted person) and the site is answered as to anyone, 200 without `my_user`
  (LemmyNet/lemmy 0.19.3 src/session_middleware.rs:67-77, crates/api/src/lib.rs:145-155,
  crates/api_common/src/utils.rs:148-159, crates/api_crud/src/site/read.rs:29-32
  and :65; the same in 0.19.5). That is the only "not logged in" it gives;
  a 400 is any error at all, the rate limit included.
- `GET /api/v3/user?username=` → GetPersonDetailsResponse
  {person_view: {person, counts, is_admin}, moderates}
- `POST /api/v3/user/login` Login {username_or_email, password, totp_2fa_token}
  → LoginResponse {jwt}
- `GET /api/v3/admin/registration_application/list?unread_only=true&page&limit`
  → {registration_applications: [RegistrationApplicationView {registration_application:
  {id, local_user_id, answer}, creator_local_user, creator: Person}]}
- `PUT /api/v3/admin/registration_application/approve` {id, approve, deny_reason}
- `POST /api/v3/user/ban` BanPerson {person_id, ban, remove_data, reason, expires}
- `GET /api/v3/modlog?type_=ModBan&page&limit` → GetModlogResponse {banned:
  [ModBanView {mod_ban: {id, other_person_id, reason, banned}, banned_person}]},
  newest first
"""

from __future__ import annotations

from typing import Any

from warden.adapters.lemmy.client import (
    Application,
    BanEvent,
    LemmyApi,
    error_code,
    major_version,
    moderated_communities,
    parse_time,
)
from warden.errors import LemmyApiMismatch, LemmyError, LemmyUnavailable
from warden.membership.requirements import UserFacts


class LemmyV3(LemmyApi):
    version = "v3"
    login_path = "/api/v3/user/login"

    async def my_user(self, token: str, client_ip: str | None = None) -> UserFacts | None:
        status, body = await self._get("/api/v3/site", token, client_ip=client_ip)
        if status != 200 or not isinstance(body, dict) or "site_view" not in body:
            code = error_code(body) or "no site in the body"
            raise LemmyUnavailable(f"GET /api/v3/site answered {status} ({code})")
        major = major_version(body.get("version"))
        if major is not None and major >= 1:
            # Lemmy 1.0's v3 layer reports admin false and no moderated communities
            # (1.0.0-beta.1 crates/api/routes_v3/src/convert.rs:165 and :348)
            raise LemmyApiMismatch(f"Lemmy {body.get('version')} must be asked through API v4")
        my_user = body.get("my_user")
        if my_user is None:
            return None  # Lemmy could not use the token: it logs nobody in
        try:
            view = my_user["local_user_view"]
            return _facts(
                view["person"], view["counts"], view["local_user"]["admin"], my_user["moderates"]
            )
        except (KeyError, TypeError) as exc:
            raise LemmyError(f"GetSiteResponse.my_user lacks {exc}") from None

    async def person(self, username: str, token: str | None = None) -> UserFacts:
        status, body = await self._get("/api/v3/user", token, {"username": username})
        if status != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise LemmyError(f"no person {username!r} on Lemmy ({error or status})")
        try:
            view = body["person_view"]
            return _facts(view["person"], view["counts"], view["is_admin"], body["moderates"])
        except (KeyError, TypeError) as exc:
            raise LemmyError(f"GetPersonDetailsResponse lacks {exc}") from None

    async def applications(self, token: str) -> list[Application]:
        out: list[Application] = []
        for page in range(1, 101):  # 50 a page; a backlog of 5,000 is read over several polls
            body = await self._ok(
                "GET",
                "/api/v3/admin/registration_application/list",
                token,
                params={"unread_only": "true", "page": str(page), "limit": "50"},
            )
            views = body.get("registration_applications") if isinstance(body, dict) else None
            if not views:
                break
            out.extend(_application(v) for v in views)
            if len(views) < 50:
                break
        return out

    async def ban(self, token: str, person_id: int, reason: str, remove_data: bool = False) -> None:
        form = {"person_id": person_id, "ban": True, "reason": reason, "remove_data": remove_data}
        await self._ok("POST", "/api/v3/user/ban", token, body=form)

    async def bans(self, token: str, after_id: int) -> list[BanEvent]:
        found: dict[int, BanEvent] = {}
        for page in range(1, 41):
            body = await self._ok(
                "GET",
                "/api/v3/modlog",
                token,
                params={"type_": "ModBan", "page": str(page), "limit": "50"},
            )
            views = body.get("banned") if isinstance(body, dict) else None
            if not views:
                break
            try:
                events = [
                    BanEvent(
                        id=int(v["mod_ban"]["id"]),
                        person_id=int(v["mod_ban"]["other_person_id"]),
                        name=str(v["banned_person"]["name"]),
                        banned=bool(v["mod_ban"]["banned"]),
                        reason=str(v["mod_ban"].get("reason") or ""),
                        local=bool(v["banned_person"].get("local", True)),
                    )
                    for v in views
                ]
            except (KeyError, TypeError) as exc:
                raise LemmyError(f"ModBanView lacks {exc}") from None
            found.update({e.id: e for e in events if e.id > after_id})
            if min(e.id for e in events) <= after_id or len(views) < 50:
                break
        return [found[i] for i in sorted(found)]


def _application(view: Any) -> Application:
    try:
        app = view["registration_application"]
        return Application(
            id=int(app["id"]),
            person_id=int(view["creator"]["id"]),
            name=str(view["creator"]["name"]),
            local_user_id=int(app["local_user_id"]),
            answer=str(app.get("answer") or ""),
        )
    except (KeyError, TypeError) as exc:
        raise LemmyError(f"RegistrationApplicationView lacks {exc}") from None


def _facts(person: Any, counts: Any, admin: Any, moderates: Any) -> UserFacts:
    return UserFacts(
        person_id=int(person["id"]),
        name=str(person["name"]),
        published=parse_time(person["published"]),
        comments=int(counts["comment_count"]),
        posts=int(counts["post_count"]),
        admin=bool(admin),
        banned=bool(person["banned"]),
        moderates=moderated_communities(moderates, "published"),
    )
