"""Lemmy 1.0 (API v4), field names as lemmy-js-client 1.0.0-beta.2 defines them.

- `GET /api/v4/account` → MyUserInfo {local_user_view: {local_user: {admin},
  person: {id, name, published_at, post_count, comment_count}, banned},
  moderates: [CommunityModeratorView]}
- `GET /api/v4/person?username=` → GetPersonDetailsResponse
  {person_view: {person, is_admin, banned}, moderates}

In v4 the counts live on Person itself, `published` became `published_at` and
`banned` moved from Person to the views.
"""

from __future__ import annotations

from typing import Any

from warden.adapters.lemmy.client import TOKEN_REFUSED, LemmyApi, community_ids, parse_time
from warden.errors import LemmyError
from warden.membership.requirements import UserFacts


class LemmyV4(LemmyApi):
    version = "v4"

    async def my_user(self, token: str) -> UserFacts | None:
        status, body = await self._get("/api/v4/account", token)
        if status in TOKEN_REFUSED:
            return None
        if status != 200 or not isinstance(body, dict):
            raise LemmyError(f"GET /api/v4/account answered {status}")
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


def _facts(person: Any, admin: Any, banned: Any, moderates: Any) -> UserFacts:
    return UserFacts(
        person_id=int(person["id"]),
        name=str(person["name"]),
        published=parse_time(person["published_at"]),
        comments=int(person["comment_count"]),
        posts=int(person["post_count"]),
        admin=bool(admin),
        banned=bool(banned),
        moderates=community_ids(moderates),
    )
