"""A Lemmy double on loopback: the endpoints Warden uses, for API v3 and v4.

Field names follow lemmy-js-client (0.19.9 for v3, 1.0.0-beta.2 for v4).
Accounts are registered with `add_user`; `down = True` makes every answer a
503, as a Lemmy that is restarting gives. POSTs to the activity endpoints
answer 200 and are recorded in `posted`, so a test can see what got through.

For invites it also speaks: login (`POST /api/v3/user/login`,
`/api/v4/account/auth/login`, Login -> LoginResponse), registration
applications (list with `unread_only`, `PUT .../approve` with ApproveRegistration
Application; every approve call is counted in `decisions`), bans (`POST
/api/v3/user/ban` BanPerson / `/api/v4/admin/ban`, which also write the modlog),
the modlog (v3 GetModlogResponse.banned: ModBanView; v4 PagedResponse of
ModlogView, kind `admin_ban`), and on v4 the native invite links (`POST`/`DELETE
/api/v4/account/invite`, LocalUserInvite) and `GET /api/v4/admin/users`
(LocalUserView with `invited_by_local_user_id`). Admin endpoints refuse
non-admins with `{"error": "not_an_admin"}`; newest first, as Lemmy lists.
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
    password: str = "correct horse"
    invited_by: int | None = None  # local_user_id of the inviter (Lemmy 1.0)

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
        self.applications: list[dict[str, Any]] = []  # RegistrationApplication + state
        self.decisions: list[tuple[int, bool]] = []  # every approve/deny call
        self.modlog: list[dict[str, Any]] = []  # {id, person_id, banned, reason}
        self.invites: dict[str, dict[str, Any]] = {}  # v4 token -> LocalUserInvite
        self.bans: list[tuple[int, str]] = []  # ban calls: person id, reason

    def apply(self, name: str, answer: str, age: timedelta = timedelta(0)) -> Account:
        """A sign-up waiting for approval: an account (no token yet) and its application."""
        account = self.add_user(f"applicant-{name}", name, age)
        with self._lock:
            self.applications.append(
                {
                    "id": len(self.applications) + 1,
                    "local_user_id": account.id,
                    "answer": answer,
                    "admin_id": None,
                    "deny_reason": None,
                    "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
            )
        return account

    def account_by_id(self, person_id: int) -> Account:
        return next(a for a in self.accounts.values() if a.id == person_id)

    def ban_event(self, account: Account, reason: str, banned: bool = True) -> None:
        """A ban made by a human admin in Lemmy's UI (it lands in the modlog)."""
        with self._lock:
            account.banned = banned
            self.modlog.append(
                {
                    "id": len(self.modlog) + 1,
                    "person_id": account.id,
                    "banned": banned,
                    "reason": reason,
                }
            )

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
                double._answer(self, "POST")

            def do_PUT(self) -> None:
                double._answer(self, "PUT")

            def do_DELETE(self) -> None:
                double._answer(self, "DELETE")

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
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            form = json.loads(raw) if raw else {}
        except ValueError:
            form = None
        if form is None:
            status, body = 400, {"error": "invalid_body"}
        else:
            status, body = self._invites_route(handler, method, form)
            if status == 0:
                status, body = self._route(handler, method)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    # -- invites, applications, bans -------------------------------------------------

    def _application_view(self, app: dict[str, Any]) -> dict[str, Any]:
        who = self.account_by_id(app["local_user_id"])
        registration = dict(app)
        if self.api == "v4":
            registration["published_at"] = registration.pop("published")
        person = who.person_v3() if self.api == "v3" else who.person_v4()
        return {
            "registration_application": registration,
            "creator_local_user": {
                "id": who.id,
                "person_id": who.id,
                "accepted_application": app["admin_id"] is not None,
            },
            "creator": person,
        }

    def _ban(self, person_id: int, reason: str, ban: bool) -> None:
        who = self.account_by_id(person_id)
        who.banned = ban
        self.bans.append((person_id, reason))
        self.modlog.append(
            {"id": len(self.modlog) + 1, "person_id": person_id, "banned": ban, "reason": reason}
        )

    def _modlog_v3(self) -> dict[str, Any]:
        views = []
        for entry in reversed(self.modlog):
            who = self.account_by_id(entry["person_id"])
            views.append(
                {
                    "mod_ban": {
                        "id": entry["id"],
                        "mod_person_id": 1,
                        "other_person_id": who.id,
                        "reason": entry["reason"],
                        "banned": entry["banned"],
                        "when_": datetime.now(UTC).isoformat(),
                    },
                    "banned_person": who.person_v3(),
                }
            )
        return {"banned": views, "removed_posts": [], "locked_posts": [], "added": []}

    def _modlog_v4(self) -> dict[str, Any]:
        items = []
        for entry in reversed(self.modlog):
            who = self.account_by_id(entry["person_id"])
            items.append(
                {
                    "modlog": {
                        "id": entry["id"],
                        "kind": "admin_ban",
                        "is_revert": not entry["banned"],
                        "reason": entry["reason"],
                        "published_at": datetime.now(UTC).isoformat(),
                        "child_count": 0,
                    },
                    "target_person": who.person_v4(),
                }
            )
        return {"items": items}

    def _invites_route(
        self, handler: BaseHTTPRequestHandler, method: str, form: dict[str, Any]
    ) -> tuple[int, Any]:
        """The invite-related endpoints; (0, None) for everything else."""
        path = urlsplit(handler.path).path
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        v = self.api
        if self.down:
            return 0, None
        if method == "POST" and path in ("/api/v3/user/login", "/api/v4/account/auth/login"):
            if path != ("/api/v3/user/login" if v == "v3" else "/api/v4/account/auth/login"):
                return 404, {"error": "not_found"}
            for token, account in self.accounts.items():
                if account.name == form.get("username_or_email") and account.password == form.get(
                    "password"
                ):
                    return 200, {
                        "jwt": token,
                        "registration_created": False,
                        "verify_email_sent": False,
                    }
            return 400, {"error": "incorrect_login"}
        admin_paths = {
            "/api/v3/admin/registration_application/list",
            "/api/v3/admin/registration_application/approve",
            "/api/v3/user/ban",
            "/api/v4/admin/registration_application/list",
            "/api/v4/admin/registration_application/approve",
            "/api/v4/admin/ban",
            "/api/v4/admin/users",
        }
        if path in admin_paths and not path.startswith(f"/api/{v}/"):
            return 404, {"error": "not_found"}
        me = self._token(handler)
        if path in admin_paths and (me is None or not me.admin):
            return 403 if me else 401, {"error": "not_an_admin" if me else "not_logged_in"}
        with self._lock:
            if path.endswith("/admin/registration_application/list") and method == "GET":
                unread = [a for a in self.applications if a["admin_id"] is None]
                chosen = unread if query.get("unread_only") == "true" else self.applications
                views = [self._application_view(a) for a in reversed(chosen)]
                if v == "v3":
                    page, limit = int(query.get("page", 1)), int(query.get("limit", 20))
                    return 200, {
                        "registration_applications": views[(page - 1) * limit : page * limit]
                    }
                return 200, {"items": views}
            if path.endswith("/admin/registration_application/approve") and method == "PUT":
                app = next((a for a in self.applications if a["id"] == form.get("id")), None)
                if app is None:
                    return 404, {"error": "couldnt_find_registration_application"}
                assert me is not None
                self.decisions.append((app["id"], bool(form["approve"])))
                app["admin_id"] = me.id
                app["deny_reason"] = None if form["approve"] else form.get("deny_reason")
                return 200, {"registration_application": self._application_view(app)}
            if path in ("/api/v3/user/ban", "/api/v4/admin/ban") and method == "POST":
                self._ban(int(form["person_id"]), str(form.get("reason") or ""), bool(form["ban"]))
                who = self.account_by_id(int(form["person_id"]))
                return 200, {
                    "person_view": {"person": who.person_v3() if v == "v3" else who.person_v4()},
                    "banned": who.banned,
                }
            if path == f"/api/{v}/modlog" and method == "GET":
                return 200, self._modlog_v3() if v == "v3" else self._modlog_v4()
            if v == "v4" and path == "/api/v4/admin/users" and method == "GET":
                items = [
                    {
                        "local_user": {
                            "id": a.id,
                            "person_id": a.id,
                            "invited_by_local_user_id": a.invited_by,
                            "accepted_application": True,
                        },
                        "person": a.person_v4(),
                        "banned": a.banned,
                    }
                    for a in self.accounts.values()
                ]
                return 200, {"items": items}
            if v == "v4" and path == "/api/v4/account/invite":
                if me is None:
                    return 401, {"error": "not_logged_in"}
                if method == "POST":
                    limit = int(self.local_site.get("max_invites_per_user_allowed", 5))
                    mine = [i for i in self.invites.values() if i["local_user_id"] == me.id]
                    if len(mine) >= limit:
                        return 400, {"error": "too_many_invites"}
                    token = f"lemmy-invite-{len(self.invites) + 1:04d}"
                    invite = {
                        "id": len(self.invites) + 1,
                        "token": token,
                        "local_user_id": me.id,
                        "max_uses": form.get("max_uses"),
                        "uses_count": 0,
                        "expires_at": form.get("expires_at"),
                        "published_at": datetime.now(UTC).isoformat(),
                    }
                    self.invites[token] = invite
                    return 200, {"invite": invite}
                if method == "DELETE":
                    invite = self.invites.get(str(form.get("token")))
                    if invite is None or invite["local_user_id"] != me.id:
                        return 404, {"error": "invalid_invite_token"}
                    del self.invites[invite["token"]]
                    return 200, {"success": True}
        return 0, None

    def _route(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, Any]:
        if self.down:
            return 503, {"error": "unavailable"}
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        me = self._token(handler)
        if method != "GET":
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
