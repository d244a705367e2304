"""A Lemmy double on loopback: the endpoints Warden uses, for API v3 and v4.

Field names follow lemmy-js-client (0.19.9 for v3, 1.0.0-beta.2 for v4).
Accounts are registered with `add_user`; `down = True` makes every answer a
503, as a Lemmy that is restarting gives. POSTs to the activity endpoints
answer 200 and are recorded in `posted`, so a test can see what got through.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Account:
    id: int
    name: str
    published: datetime
    comments: int = 0
    posts: int = 0
    admin: bool = False
    banned: bool = False
    moderates: list[int] = field(default_factory=list)

    def person_v3(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "banned": self.banned,
            "published": self.published.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": f"https://lemmy.test/u/{self.name}",
            "local": True,
            "deleted": False,
            "bot_account": False,
            "instance_id": 1,
        }

    def person_v4(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "published_at": self.published.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "ap_id": f"https://lemmy.test/u/{self.name}",
            "local": True,
            "last_refreshed_at": self.published.isoformat(),
            "deleted": False,
            "bot_account": False,
            "instance_id": 1,
            "post_count": self.posts,
            "comment_count": self.comments,
        }

    def counts(self) -> dict[str, int]:
        return {"person_id": self.id, "post_count": self.posts, "comment_count": self.comments}

    def moderates_v3(self) -> list[dict[str, Any]]:
        return [
            {
                "community": {"id": c, "name": f"c{c}", "title": f"C{c}", "actor_id": f"c{c}"},
                "moderator": self.person_v3(),
            }
            for c in self.moderates
        ]

    def moderates_v4(self) -> list[dict[str, Any]]:
        return [
            {
                "community": {"id": c, "name": f"c{c}", "title": f"C{c}", "ap_id": f"c{c}"},
                "moderator": self.person_v4(),
            }
            for c in self.moderates
        ]


class LemmyDouble:
    """Lemmy 0.19 (`api="v3"`) or 1.0 (`api="v4"`) as far as Warden can tell."""

    def __init__(self, api: str = "v3") -> None:
        self.api = api
        self.accounts: dict[str, Account] = {}  # token -> account
        self.down = False
        self.identity_calls = 0
        self.posted: list[tuple[str, str]] = []
        # LocalSite as lemmy-js-client types it (0.19: no image settings in the API;
        # 1.0 adds image_mode and image_upload_disabled)
        self.local_site: dict[str, Any] = {
            "id": 1,
            "site_id": 1,
            "site_setup": True,
            "registration_mode": "RequireApplication",
            "federation_enabled": True,
        }
        if api == "v4":
            self.local_site |= {"image_mode": "StoreLinkPreviews", "image_upload_disabled": False}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_user(self, token: str, name: str, age: timedelta, **kw: Any) -> Account:
        account = Account(
            id=len(self.accounts) + 1, name=name, published=datetime.now(UTC) - age, **kw
        )
        self.accounts[token] = account
        return account

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double._answer(self, "GET")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                double._answer(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _token(self, handler: BaseHTTPRequestHandler) -> Account | None:
        auth = handler.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        if token is None:  # Lemmy also reads the `jwt` cookie lemmy-ui sets
            cookie = SimpleCookie(handler.headers.get("cookie", ""))
            token = cookie["jwt"].value if "jwt" in cookie else None
        return self.accounts.get(token) if token else None

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        status, body = self._route(handler, method)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, Any]:
        if self.down:
            return 503, {"error": "unavailable"}
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        me = self._token(handler)
        if method == "POST":
            with self._lock:
                self.posted.append((path, me.name if me else ""))
            return 200, {"ok": True}
        site = {
            "site_view": {"site": {"name": "double"}, "local_site": dict(self.local_site)},
            "admins": [],
            "version": "x",
        }
        if path == f"/api/{self.api}/site":
            with self._lock:
                # identity look-ups carry a token; version detection does not
                self.identity_calls += self.api == "v3" and "authorization" in handler.headers
            if self.api == "v3":
                site["version"] = "0.19.9"
                if me:
                    site["my_user"] = {
                        "local_user_view": {
                            "local_user": {"id": me.id, "person_id": me.id, "admin": me.admin},
                            "local_user_vote_display_mode": {},
                            "person": me.person_v3(),
                            "counts": me.counts(),
                        },
                        "follows": [],
                        "moderates": me.moderates_v3(),
                        "community_blocks": [],
                        "instance_blocks": [],
                        "person_blocks": [],
                        "discussion_languages": [],
                    }
            else:
                site["version"] = "1.0.0"
            return 200, site
        if self.api == "v4" and path == "/api/v4/account":
            with self._lock:
                self.identity_calls += 1
            if not me:
                return 401, {"error": "not_logged_in"}
            return 200, {
                "local_user_view": {
                    "local_user": {"id": me.id, "person_id": me.id, "admin": me.admin},
                    "person": me.person_v4(),
                    "banned": me.banned,
                },
                "follows": [],
                "moderates": me.moderates_v4(),
                "multi_community_follows": [],
                "community_blocks": [],
                "instance_communities_blocks": [],
                "instance_persons_blocks": [],
                "person_blocks": [],
                "keyword_blocks": [],
                "discussion_languages": [],
            }
        by_name = {a.name: a for a in self.accounts.values()}
        if path == "/api/v3/user" and self.api == "v3":
            who = by_name.get(query.get("username", ""))
            if who is None:
                return 404, {"error": "couldnt_find_person"}
            return 200, {
                "person_view": {
                    "person": who.person_v3(),
                    "counts": who.counts(),
                    "is_admin": who.admin,
                },
                "comments": [],
                "posts": [],
                "moderates": who.moderates_v3(),
            }
        if path == "/api/v4/person" and self.api == "v4":
            who = by_name.get(query.get("username", ""))
            if who is None:
                return 404, {"error": "not_found"}
            return 200, {
                "person_view": {
                    "person": who.person_v4(),
                    "is_admin": who.admin,
                    "banned": who.banned,
                },
                "moderates": who.moderates_v4(),
                "multi_communities_created": [],
            }
        return 404, {"error": "not_found"}


def running_double(api: str) -> Iterator[LemmyDouble]:
    """A started double for a fixture; stopped afterwards."""
    double = LemmyDouble(api)
    double.start()
    try:
        yield double
    finally:
        double.stop()
