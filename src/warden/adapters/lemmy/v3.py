"""Lemmy 0.19.x (API v3), field names as lemmy-js-client 0.19.9 defines them.

- `GET /api/v3/site` → GetSiteResponse.my_user: MyUserInfo
  {local_user_view: {local_user: {admin}, person: {id, name, published, banned},
  counts: {post_count, comment_count}}, moderates: [CommunityModeratorView]}
- `GET /api/v3/user?username=` → GetPersonDetailsResponse
  {person_view: {person, counts, is_admin}, moderates}
"""

from __future__ import annotations

from typing import Any

from warden.adapters.lemmy.client import TOKEN_REFUSED, LemmyApi, community_ids, parse_time
from warden.errors import LemmyError
from warden.membership.requirements import UserFacts


class LemmyV3(LemmyApi):
    version = "v3"

    async def my_user(self, token: str) -> UserFacts | None:
        status, body = await self._get("/api/v3/site", token)
        if status in TOKEN_REFUSED:
            return None
        if status != 200 or not isinstance(body, dict):
            raise LemmyError(f"GET /api/v3/site answered {status}")
        my_user = body.get("my_user")
        if not my_user:
            return None  # Lemmy did not recognise the token
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


def _facts(person: Any, counts: Any, admin: Any, moderates: Any) -> UserFacts:
    return UserFacts(
        person_id=int(person["id"]),
        name=str(person["name"]),
        published=parse_time(person["published"]),
        comments=int(counts["comment_count"]),
        posts=int(counts["post_count"]),
        admin=bool(admin),
        banned=bool(person["banned"]),
        moderates=community_ids(moderates),
    )
