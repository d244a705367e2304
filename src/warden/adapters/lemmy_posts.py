"""Finding the Lemmy posts that use an uploaded file, through Lemmy's search API.

For deployments that do not give Warden read access to Lemmy's database
(`federated.lemmy_database_url`), the console's placement service asks the
search route instead, with the bot's token:

- 0.19: `GET /api/v3/search` (0.19.5 src/api_routes_http.rs:159-162) with `q` and
  `type_` (0.19.5 crates/api_common/src/site.rs:63-77): `type_=Url` matches
  `post.url` exactly, `type_=Posts` the name or body by ILIKE (0.19.5
  crates/db_views/src/post_view.rs:377-390). The answer's `posts` are PostViews
  (site.rs:80-88) with `post` and `community`.
- 1.0: `GET /api/v4/search` (1.0.0-beta.1 crates/api/routes/src/lib.rs:210-213) with
  `search_term`, `type_=Posts`, `post_url_only` (exact `post.url`) and
  `show_nsfw` (1.0.0-beta.1 crates/db_views/site/src/api.rs:695-715; matching in
  crates/db_views/post/src/impls.rs:455-478); the answer's `posts` (api.rs:720-735).

Neither search reads `post.thumbnail_url`, and 0.19 applies the bot account's own
"show NSFW" setting (there is no parameter): turn it on for the bot, or give
Warden the database. Every post found is read again with `aliases_in`, so only
the whole alias on one of this instance's hosts places media.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warden.adapters.lemmy import LemmyApi
from warden.adapters.lemmy.client import AutoLemmy
from warden.adapters.lemmy_db import aliases_in

#: (alias, post id, community id, community name)
PostUse = tuple[str, int, int, str | None]


def image_urls(alias: str, hosts: Iterable[str], api: str) -> list[str]:
    """The URLs a Lemmy of this API writes for an upload (0.19.5
    crates/api_common/src/request.rs:193-198; 1.0.0-beta.1 crates/api/api_utils/src/request.rs:340-346)."""
    route = "pictrs/image" if api == "v3" else "api/v4/image"
    return [f"https://{h}/{route}/{alias}" for h in sorted({h.lower() for h in hosts})]


def _uses(item: Any, alias: str, hosts: set[str]) -> PostUse | None:
    if not isinstance(item, dict) or not isinstance(item.get("post"), dict):
        return None
    post: dict[str, Any] = item["post"]
    community = item.get("community") if isinstance(item.get("community"), dict) else {}
    values = [str(post.get(k) or "") for k in ("url", "thumbnail_url", "body")]
    placed = any(
        a == alias and (host is None or host in hosts) for v in values for host, a in aliases_in(v)
    )
    post_id, community_id = post.get("id"), post.get("community_id")
    if not placed or not isinstance(post_id, int) or not isinstance(community_id, int):
        return None
    name = community.get("name") if isinstance(community, dict) else None
    return alias, post_id, community_id, name if isinstance(name, str) else None


async def posts_using(
    lemmy: LemmyApi, token: str, alias: str, hosts: Iterable[str]
) -> list[PostUse]:
    """The posts that use `alias`, as Lemmy's search finds them (UpstreamError when
    Lemmy cannot answer, LemmyRateLimited included: the caller tries again later)."""
    api = await lemmy.chosen() if isinstance(lemmy, AutoLemmy) else lemmy
    local = {h.lower() for h in hosts}
    searches: list[dict[str, str]] = []
    for url in image_urls(alias, local, api.version):
        if api.version == "v3":
            searches.append({"q": url, "type_": "Url", "limit": "50"})
        else:
            searches.append(
                {"search_term": url, "type_": "Posts", "post_url_only": "true", "show_nsfw": "true"}
            )
    if api.version == "v3":
        searches.append({"q": alias, "type_": "Posts", "limit": "50"})
    else:
        searches.append({"search_term": alias, "type_": "Posts", "show_nsfw": "true"})
    found: dict[int, PostUse] = {}
    for params in searches:
        body = await api._ok(
            "GET", f"/api/{api.version}/search", token, params=params
        )  # the client's error mapping
        posts = body.get("posts") if isinstance(body, dict) else None
        for item in posts if isinstance(posts, list) else []:
            use = _uses(item, alias, local)
            if use is not None:
                found[use[1]] = use
    return [found[k] for k in sorted(found)]
