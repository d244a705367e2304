"""A Lemmy double on loopback, rebuilt from Lemmy's source: 0.19.3, 0.19.5+ and 1.0.

Every behaviour Warden relies on is reproduced as the real server has it, and
cites it (repository, tag, file:line). Versions: `LemmyDouble("0.19.3")`,
`LemmyDouble("0.19.5")` (0.19.4 to 0.19.20 answer Warden alike), `LemmyDouble("1.0")`;
"v3" and "v4" are kept as names for 0.19.5 and 1.0. Field names follow
lemmy-js-client 0.19.9 (API v3) and 1.0.0-beta.1 (API v4).

What it reproduces:

- Tokens are JWTs (`lemmy_jwt`); a request's token is read as Lemmy reads it
  (`Authorization: Bearer`, else the first `jwt` cookie). A token that logs
  nobody in is dropped silently by the session middleware (LemmyNet/lemmy 0.19.3
  src/session_middleware.rs:67-77; 1.0.0-beta.1
  crates/routes/src/middleware/session.rs:68-78): endpoints that take an
  optional user answer as to anyone (0.19's `/api/v3/site`: 200 without
  `my_user`), endpoints that need one answer 401 `incorrect_login` (0.19.3
  crates/db_views/src/local_user_view.rs:116-125; 1.0.0-beta.1
  crates/db_views/local_user/src/impls.rs:215-224, crates/utils/src/error.rs:229).
- Errors: `{"error": code}` with 400 for everything but `incorrect_login` (401)
  and not found (404) (0.19.3 crates/utils/src/error.rs:57-70; 1.0.0-beta.1
  crates/utils/src/error.rs:226-237); 1.0 adds `cause` (error.rs:176-182).
- Unknown routes: 404 with an EMPTY body (actix/actix-web web-v4.4.0
  actix-web/src/app_service.rs:65-69, web-v4.13.0 :67-71; passed through by Lemmy's
  `jsonify_plain_text_errors`, 0.19.3 crates/utils/src/response.rs:7-12).
- The per-IP rate limit of the `message` bucket (every `/api/v3` and `/api/v4`
  scope Warden calls is wrapped in it: 0.19.3 src/api_routes_http.rs:140-141 and
  :283-284; 1.0.0-beta.1 crates/api/routes_v3/src/lib.rs:40-41), default 180
  per 60 s (0.19.3 migrations/2022-10-06-183632_move_blocklist_to_db/up.sql:135-136),
  keyed by the address actix's `realip_remote_addr` gives (`Forwarded: for=`,
  else the first `X-Forwarded-For`, else the peer: web-v4.4.0
  actix-web/src/info.rs:74-129). 0.19 is a token bucket answering 400
  `rate_limit_error` (0.19.3 crates/utils/src/rate_limit/rate_limiter.rs:44-64 and
  :208-229, rate_limit/mod.rs:184-209); 1.0 a fixed window answering 429
  `too_many_requests` (1.0.0-beta.1 crates/utils/src/rate_limit/backend.rs:71-112,
  crates/utils/src/response.rs:13 and :30-31). Other buckets (post, comment,
  image...) are not modelled: Warden's look-ups never touch them.
- 1.0 serves `/api/v3/site` through a compatibility layer that reports
  `admin: false` and `moderates: []` (1.0.0-beta.1 crates/api/routes_v3/src/lib.rs:43,
  crates/api/routes_v3/src/convert.rs:165 and :348); it has no `GET /api/v3/user`.
- 1.0's enums are snake_case (lemmy-js-client 1.0.0-beta.1 src/types/ImageMode.ts,
  RegistrationMode.ts), 0.19's PascalCase (0.19.9 src/types/RegistrationMode.ts).
- v4 lists are cursor pages: `limit`, `page_cursor` in, `next_page` out
  (lemmy-js-client 1.0.0-beta.1 src/types/PagedResponse.ts:9-13).
- 0.19.5 hides moderators of local-only communities from anonymous person
  look-ups (0.19.5 crates/apub/src/api/read_person.rs:96-100,
  crates/db_views_actor/src/community_moderator_view.rs:74-76); 0.19.3 has no
  community visibility.

For invites it also speaks: login, registration applications, bans (which
write the modlog), the modlog, and on 1.0 the native invite links and
`GET /api/v4/admin/users`. `down = True` makes every answer a 503, as Lemmy's
startup server gives (0.19.3 src/lib.rs:251-262). POSTs to the activity
endpoints answer 200 and are recorded in `posted`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.lemmy_credentials import lemmy_token

VERSIONS = ("0.19.3", "0.19.5", "1.0")
_ALIASES = {"v3": "0.19.5", "v4": "1.0"}
#: what GetSiteResponse.version says
_REPORTED = {"0.19.3": "0.19.3", "0.19.5": "0.19.5", "1.0": "1.0.0-beta.1"}
_SECRET = b"lemmy-double-jwt-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def lemmy_jwt(label: str) -> str:
    """A token shaped like Lemmy's: `jsonwebtoken::encode(&Header::default(), &Claims)`,
    HS256 with claims {sub, iss, iat} (LemmyNet/lemmy 0.19.3
    crates/api_common/src/claims.rs:12-19 and :39-53); deterministic per label."""
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    claims = {"sub": label, "iss": "lemmy.test", "iat": 1_700_000_000}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_token(handler: BaseHTTPRequestHandler, api: str) -> str | None:
    """The token Lemmy reads from this request: `read_auth_token` (LemmyNet/lemmy 0.19.3
    crates/api/src/lib.rs:78-91), byte for byte as tests/servers/lemmy_credentials.py has it."""
    return lemmy_token(handler.headers.items(), api)


def realip(handler: BaseHTTPRequestHandler) -> str:
    """The address Lemmy rate-limits under: actix's `realip_remote_addr`
    (actix/actix-web web-v4.4.0 actix-web/src/info.rs:74-129) parsed by Lemmy's
    `get_ip` / `parse_ip`, falling back to 127.0.0.1 (0.19.3
    crates/utils/src/rate_limit/mod.rs:204-221; 1.0.0-beta.1
    crates/utils/src/rate_limit/input.rs:34-47)."""
    found: str | None = None
    for header in handler.headers.get_all("forwarded") or []:
        for part in header.replace(";", ",").split(","):
            name, sep, value = part.strip().partition("=")
            if sep and name.strip().lower() == "for":
                found = value.strip().strip('"')
                break
        if found is not None:
            break
    if found is None:
        xff = handler.headers.get("x-forwarded-for")
        found = xff.split(",", 1)[0].strip() if xff is not None else handler.client_address[0]
    text = found
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    for candidate in (text, text.rpartition(":")[0]):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if address.version == 6:  # 1.0 keys IPv6 by its /64 (input.rs:20-30)
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)
    return "127.0.0.1"


class RateLimit:
    """Lemmy's per-IP `message` bucket, as each version counts it."""

    def __init__(self, fixed_window: bool, capacity: int = 180, seconds: int = 60) -> None:
        self.fixed_window = fixed_window
        self.capacity = capacity
        self.seconds = seconds
        #: seconds since start; a test may stop it to model a flood within one second
        self.clock: Callable[[], float] = time.monotonic
        self._start = time.monotonic()
        self._state: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> bool:
        now = int(self.clock() - self._start)  # whole seconds, like InstantSecs
        with self._lock:
            if self.fixed_window:
                # 1.0.0-beta.1 crates/utils/src/rate_limit/backend.rs:81-106
                expiry, count = self._state.get(key, [now + self.seconds, 0])
                if expiry <= now:
                    expiry, count = now + self.seconds, 0
                count += 1
                self._state[key] = [expiry, count]
                return count <= self.capacity
            # 0.19.3 crates/utils/src/rate_limit/rate_limiter.rs:44-64 and :208-229
            last, tokens = self._state.get(key, [now, self.capacity])
            added = (now - last) * self.capacity // self.seconds
            tokens = min(tokens + added, self.capacity)
            if tokens == 0:
                return False
            self._state[key] = [now, tokens - 1]
            return True


@dataclass
class Community:
    id: int
    published: datetime
    local_only: bool = False

    def v3(self, version: str) -> dict[str, Any]:
        """Community as lemmy-js-client 0.19.9 src/types/Community.ts types it."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": f"c{self.id}",
            "title": f"C{self.id}",
            "removed": False,
            "published": _stamp(self.published),
            "deleted": False,
            "nsfw": False,
            "actor_id": f"https://lemmy.test/c/c{self.id}",
            "local": True,
            "hidden": False,
            "posting_restricted_to_mods": False,
            "instance_id": 1,
        }
        if version != "0.19.3":  # visibility is 0.19.4+ (0.19.5 source/community.rs:71)
            out["visibility"] = "LocalOnly" if self.local_only else "Public"
        return out

    def v4(self) -> dict[str, Any]:
        """Community as lemmy-js-client 1.0.0-beta.1 src/types/Community.ts types it."""
        return {
            "id": self.id,
            "name": f"c{self.id}",
            "title": f"C{self.id}",
            "removed": False,
            "published_at": _stamp(self.published),
            "deleted": False,
            "nsfw": False,
            "ap_id": f"https://lemmy.test/c/c{self.id}",
            "local": True,
            "posting_restricted_to_mods": False,
            "instance_id": 1,
            "visibility": "local_only_public" if self.local_only else "public",
        }


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
    token: str = ""  # the JWT Lemmy issued at login

    def person_v3(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "banned": self.banned,
            "published": _stamp(self.published),
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
            "published_at": _stamp(self.published),
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


_EMPTY = object()  # an answer with no body at all
#: Lemmy's API scopes, (api served, path version) -> first segments
#: (0.19.3 src/api_routes_http.rs:137-352; 1.0.0-beta.1 crates/api/routes/src/lib.rs:195-492,
#: crates/api/routes_v3/src/lib.rs:40-121)
_SCOPES = {
    ("v3", "v3"): {
        "site",
        "modlog",
        "search",
        "resolve_object",
        "community",
        "federated_instances",
        "post",
        "comment",
        "private_message",
        "user",
        "admin",
        "custom_emoji",
    },
    ("v4", "v4"): {
        "site",
        "modlog",
        "search",
        "resolve_object",
        "community",
        "federated_instances",
        "post",
        "comment",
        "private_message",
        "account",
        "person",
        "admin",
        "custom_emoji",
        "image",
        "tagline",
        "notifications",
        "multi_community",
    },
    ("v4", "v3"): {"site", "search", "resolve_object", "community", "post", "comment", "user"},
}
#: The routes the double serves, per API (0.19.3 src/api_routes_http.rs:135-359;
#: 1.0.0-beta.1 crates/api/routes/src/lib.rs:195-492); everything else is actix's 404.
_ROUTES = {
    "v3": {
        ("GET", "/api/v3/site"),
        ("GET", "/api/v3/user"),
        ("GET", "/api/v3/modlog"),
        ("GET", "/api/v3/admin/registration_application/list"),
        ("PUT", "/api/v3/admin/registration_application/approve"),
        ("POST", "/api/v3/user/login"),
        ("POST", "/api/v3/user/ban"),
        ("POST", "/api/v3/post"),
        ("POST", "/api/v3/comment"),
        ("POST", "/api/v3/community"),
        ("POST", "/api/v3/private_message"),
        ("POST", "/pictrs/image"),  # 0.19.3 crates/routes/src/images.rs:34 (not under /api)
    },
    "v4": {
        ("GET", "/api/v4/site"),
        ("GET", "/api/v4/account"),
        ("GET", "/api/v4/person"),
        ("GET", "/api/v4/modlog"),
        ("GET", "/api/v4/admin/users"),
        ("GET", "/api/v4/admin/registration_application/list"),
        ("PUT", "/api/v4/admin/registration_application/approve"),
        ("POST", "/api/v4/account/auth/login"),
        ("POST", "/api/v4/admin/ban"),
        ("POST", "/api/v4/account/invite"),
        ("DELETE", "/api/v4/account/invite"),
        ("POST", "/api/v4/post"),
        ("POST", "/api/v4/comment"),
        ("POST", "/api/v4/community"),
        ("POST", "/api/v4/private_message"),
        ("POST", "/api/v4/image"),
        ("POST", "/api/v4/account/avatar"),
        ("POST", "/api/v4/account/banner"),
        ("POST", "/api/v4/community/icon"),
        ("POST", "/api/v4/community/banner"),
        ("POST", "/api/v4/site/icon"),
        ("POST", "/api/v4/site/banner"),
        # the v3 compatibility layer's few routes (crates/api/routes_v3/src/lib.rs:43,
        # :63-66, :80-83, :96-99): no GET /api/v3/user, no POST /api/v3/community
        ("GET", "/api/v3/site"),
        ("POST", "/api/v3/post"),
        ("POST", "/api/v3/comment"),
        ("POST", "/api/v3/user/login"),
    },
}


class LemmyDouble:
    """Lemmy 0.19.3, 0.19.5 or 1.0 as far as Warden can tell."""

    def __init__(self, version: str = "0.19.5") -> None:
        version = _ALIASES.get(version, version)
        if version not in VERSIONS:
            raise ValueError(f"unknown Lemmy version {version!r} (known: {', '.join(VERSIONS)})")
        self.version = version
        self.api = "v4" if version == "1.0" else "v3"
        self.tokens: dict[str, Account] = {}  # every token (label and JWT) -> account
        self.people: list[Account] = []
        self.communities: dict[int, Community] = {}
        self.down = False
        self.identity_calls = 0
        self.seen_ips: list[str] = []  # the rate-limit key of every identity call
        self.login_ips: list[str] = []  # the rate-limit key of every login
        # logins are charged to the `register` bucket, 3 an hour by default (LemmyNet/lemmy
        # 003613b, 0.19 line, src/api_routes_http.rs: `/user/login` wraps `rate_limit.register()`)
        self.login_limit = RateLimit(fixed_window=self.api == "v4", capacity=3, seconds=3600)
        self.posted: list[tuple[str, str]] = []
        self.rate_limit = RateLimit(fixed_window=self.api == "v4")
        # LocalSite as lemmy-js-client types it (0.19: no image settings in the API;
        # 1.0 adds image_mode and image_upload_disabled, snake_case enums)
        self.local_site: dict[str, Any] = {
            "id": 1,
            "site_id": 1,
            "site_setup": True,
            "registration_mode": "RequireApplication",
            "federation_enabled": True,
            "community_creation_admin_only": False,
        }
        if self.api == "v4":
            self.local_site |= {
                "registration_mode": "require_application",
                "image_mode": "store_link_previews",
                "image_upload_disabled": False,
                "default_post_listing_type": "local",
            }
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.applications: list[dict[str, Any]] = []  # RegistrationApplication + state
        self.decisions: list[tuple[int, bool]] = []  # every approve/deny call
        self.modlog: list[dict[str, Any]] = []  # {id, person_id, banned, reason}
        self.invites: dict[str, dict[str, Any]] = {}  # v4 token -> LocalUserInvite
        self.bans: list[tuple[int, str]] = []  # ban calls: person id, reason

    # -- set-up ------------------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, Account]:
        """Label -> account (the tokens tests registered)."""
        return {t: a for t, a in self.tokens.items() if t != a.token}

    def add_community(
        self, community_id: int, age: timedelta, *, local_only: bool = False
    ) -> Community:
        community = Community(community_id, datetime.now(UTC) - age, local_only)
        self.communities[community_id] = community
        return community

    def add_user(self, token: str, name: str, age: timedelta, **kw: Any) -> Account:
        """An account reachable by `token` (a label) and by `lemmy_jwt(token)` (its real token)."""
        account = Account(
            id=len(self.people) + 1, name=name, published=datetime.now(UTC) - age, **kw
        )
        account.token = token if token.count(".") == 2 else lemmy_jwt(token)
        for community_id in account.moderates:
            self.communities.setdefault(
                community_id, Community(community_id, datetime.now(UTC) - timedelta(days=400))
            )
        with self._lock:
            self.people.append(account)
            self.tokens[token] = account
            self.tokens[account.token] = account
        return account

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
                    "published": _stamp(datetime.now(UTC)),
                }
            )
        return account

    def account_by_id(self, person_id: int) -> Account:
        return next(a for a in self.people if a.id == person_id)

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

    def upgrade(self, version: str) -> None:
        """An in-place upgrade or downgrade: same accounts, another version's API."""
        fresh = LemmyDouble(version)
        self.version, self.api, self.rate_limit = fresh.version, fresh.api, fresh.rate_limit
        self.local_site = fresh.local_site

    # -- serving -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> None:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one write (no delayed-ACK stall)
            disable_nagle_algorithm = True

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
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _me(self, handler: BaseHTTPRequestHandler) -> Account | None:
        """The logged-in account; a token that logs nobody in (unknown, banned or deleted
        person: 0.19.3 crates/api_common/src/utils.rs:148-159) is dropped silently."""
        token = _read_token(handler, self.api)
        account = self.tokens.get(token) if token else None
        return account if account is not None and not account.banned else None

    def _error(self, status: int, code: str) -> tuple[int, Any]:
        """Lemmy's error body: `{"error": code}` (0.19.3 crates/utils/src/error.rs:68-69, :76);
        1.0 serialises LemmyError with its `cause` too (1.0.0-beta.1 error.rs:176-182, :244)."""
        body: dict[str, Any] = {"error": code}
        if self.api == "v4":
            body["cause"] = "".join(part.title() for part in code.split("_"))
        return status, body

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if self.down:
            status, body = 503, {"error": "Lemmy is currently starting"}
        else:
            form: dict[str, Any] | None
            try:
                form = json.loads(raw) if raw else {}
            except ValueError:
                form = None
            if not isinstance(form, dict):
                form = None
            status, body = self._limited(handler)
            if status == 0 and form is None:
                status, body = self._error(400, "invalid_body")
            elif status == 0 and form is not None:
                status, body = self._invites_route(handler, method, form)
                if status == 0:
                    status, body = self._route(handler, method)
        data = b"" if body is _EMPTY else json.dumps(body).encode()
        handler.send_response(status)
        if data:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _limited(self, handler: BaseHTTPRequestHandler) -> tuple[int, Any]:
        """(0, None) when the request may go on; Lemmy's rate-limit answer otherwise."""
        path = urlsplit(handler.path).path
        if not self._known(handler.command, path) or not path.startswith("/api/"):
            return 0, None
        if self.rate_limit.check(realip(handler)):
            return 0, None
        if self.api == "v3":
            # 0.19.3 crates/utils/src/rate_limit/mod.rs:194-198 -> error.rs:57-66 (400)
            return self._error(400, "rate_limit_error")
        # actix-extensible-rate-limit's denial: 429, empty body, x-ratelimit-* and
        # retry-after headers (jacob-pro/actix-extensible-rate-limit 0.4.0 = a6e9f87
        # src/middleware/builder.rs:80-90), rebuilt by Lemmy as a new JSON response of the
        # same status, which drops those headers (1.0.0-beta.1 crates/utils/src/response.rs:13,
        # :30-31 and :38-43)
        return 429, {"error": "too_many_requests"}

    def _known(self, method: str, path: str) -> bool:
        """Whether this is one of this version's routes (the rest are actix's 404).

        Besides the routes modelled above, any path inside one of Lemmy's API
        scopes (`/api/v3/post/like`, `/api/v4/community/list`...) is taken as a
        route the double does not model: it answers 200 `{"ok": true}`."""
        if (method, path) in _ROUTES[self.api]:
            return True
        api, _, rest = path.removeprefix("/api/").partition("/")
        return rest.split("/", 1)[0] in _SCOPES.get((self.api, api), ())

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

    def _modlog_v4(self) -> list[dict[str, Any]]:
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
        return items

    @staticmethod
    def _page(items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        """A v4 PagedResponse: `limit` items from `page_cursor` on, `next_page` when more
        (lemmy-js-client 1.0.0-beta.1 src/types/PagedResponse.ts:9-13)."""
        limit = int(query.get("limit", 20))
        start = int(query.get("page_cursor", "0") or 0)
        page: dict[str, Any] = {"items": items[start : start + limit]}
        if start + limit < len(items):
            page["next_page"] = str(start + limit)
        return page

    def _invites_route(
        self, handler: BaseHTTPRequestHandler, method: str, form: dict[str, Any]
    ) -> tuple[int, Any]:
        """The invite-related endpoints; (0, None) for everything else."""
        path = urlsplit(handler.path).path
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        v = self.api
        if method == "POST" and path == (
            "/api/v3/user/login" if v == "v3" else "/api/v4/account/auth/login"
        ):
            self.login_ips.append(realip(handler))
            if not self.login_limit.check(realip(handler)):
                if v == "v3":
                    return self._error(400, "rate_limit_error")
                return 429, {"error": "too_many_requests"}
            for account in self.people:
                if account.name == form.get("username_or_email") and account.password == form.get(
                    "password"
                ):
                    return 200, {
                        "jwt": account.token,
                        "registration_created": False,
                        "verify_email_sent": False,
                    }
            return self._error(401, "incorrect_login")
        admin_paths = {
            f"/api/{v}/admin/registration_application/list",
            f"/api/{v}/admin/registration_application/approve",
            "/api/v3/user/ban" if v == "v3" else "/api/v4/admin/ban",
        }
        if v == "v4":
            admin_paths.add("/api/v4/admin/users")
        me = self._me(handler)
        if path in admin_paths:
            if me is None:
                return self._error(401, "incorrect_login")
            if not me.admin:
                # 0.19.3 crates/api_common/src/utils.rs:101-104; 1.0.0-beta.1
                # crates/api/api_utils/src/utils.rs:157: a 400 like every other error
                return self._error(400, "not_an_admin")
        with self._lock:
            if path in admin_paths and path.endswith("/list") and method == "GET":
                unread = [a for a in self.applications if a["admin_id"] is None]
                chosen = unread if query.get("unread_only") == "true" else self.applications
                views = [self._application_view(a) for a in reversed(chosen)]
                if v == "v3":
                    page, limit = int(query.get("page", 1)), int(query.get("limit", 20))
                    return 200, {
                        "registration_applications": views[(page - 1) * limit : page * limit]
                    }
                return 200, self._page(views, query)
            if path in admin_paths and path.endswith("/approve") and method == "PUT":
                app = next((a for a in self.applications if a["id"] == form.get("id")), None)
                if app is None:
                    return self._error(404, "couldnt_find_registration_application")
                assert me is not None
                self.decisions.append((app["id"], bool(form["approve"])))
                app["admin_id"] = me.id
                app["deny_reason"] = None if form["approve"] else form.get("deny_reason")
                return 200, {"registration_application": self._application_view(app)}
            if path in admin_paths and path.endswith("/ban") and method == "POST":
                self._ban(int(form["person_id"]), str(form.get("reason") or ""), bool(form["ban"]))
                who = self.account_by_id(int(form["person_id"]))
                return 200, {
                    "person_view": {"person": who.person_v3() if v == "v3" else who.person_v4()},
                    "banned": who.banned,
                }
            if path == f"/api/{v}/modlog" and method == "GET":
                if v == "v3":
                    return 200, self._modlog_v3()
                return 200, self._page(self._modlog_v4(), query)
            if path == "/api/v4/admin/users" and method == "GET":
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
                    for a in self.people
                ]
                return 200, self._page(items, query)
            if v == "v4" and path == "/api/v4/account/invite":
                if me is None:
                    return self._error(401, "incorrect_login")
                if method == "POST":
                    limit = int(self.local_site.get("max_invites_per_user_allowed", 5))
                    mine = [i for i in self.invites.values() if i["local_user_id"] == me.id]
                    if len(mine) >= limit:
                        return self._error(400, "too_many_invites")
                    token = f"lemmy-invite-{len(self.invites) + 1:04d}"
                    invite: dict[str, Any] = {
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
                    found = self.invites.get(str(form.get("token")))
                    if found is None or found["local_user_id"] != me.id:
                        return self._error(400, "invalid_invite_token")
                    del self.invites[found["token"]]
                    return 200, {"success": True}
        return 0, None

    # -- site, account, person ------------------------------------------------------------

    def _moderates(self, who: Account, *, authenticated: bool = True) -> list[dict[str, Any]]:
        """[CommunityModeratorView {community, moderator}] (lemmy-js-client 0.19.9 and
        1.0.0-beta.1 src/types/CommunityModeratorView.ts)."""
        out = []
        for community_id in who.moderates:
            community = self.communities[community_id]
            if self.version == "0.19.5" and not authenticated and community.local_only:
                continue  # 0.19.5 community_moderator_view.rs:74-76
            if self.api == "v3":
                out.append({"community": community.v3(self.version), "moderator": who.person_v3()})
            else:
                out.append({"community": community.v4(), "moderator": who.person_v4()})
        return out

    def _site(self) -> dict[str, Any]:
        local_site = dict(self.local_site)
        return {
            "site_view": {"site": {"id": 1, "name": "double"}, "local_site": local_site},
            "admins": [],
            "version": _REPORTED[self.version],
        }

    def _my_user_v3(self, me: Account) -> dict[str, Any]:
        """MyUserInfo (lemmy-js-client 0.19.9 src/types/MyUserInfo.ts); on 1.0 the v3 layer
        fills `admin: false` and `moderates: []` (1.0.0-beta.1
        crates/api/routes_v3/src/convert.rs:165 and :348)."""
        compat = self.api == "v4"
        return {
            "local_user_view": {
                "local_user": {"id": me.id, "person_id": me.id, "admin": me.admin and not compat},
                "local_user_vote_display_mode": {},
                "person": me.person_v3(),
                "counts": me.counts(),
            },
            "follows": [],
            "moderates": [] if compat else self._moderates(me),
            "community_blocks": [],
            "instance_blocks": [],
            "person_blocks": [],
            "discussion_languages": [],
        }

    def _route(self, handler: BaseHTTPRequestHandler, method: str) -> tuple[int, Any]:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        me = self._me(handler)
        if not self._known(method, path):
            return 404, _EMPTY
        if method == "POST":
            with self._lock:
                self.posted.append((path, me.name if me else ""))
            return 200, {"ok": True}
        if method != "GET":
            return 200, {"ok": True}
        if path == "/api/v3/site":
            # 0.19.3 crates/api_crud/src/site/read.rs:29-32, :65 (my_user only when logged in)
            site = self._site()
            if self.api == "v3":
                site["site_view"]["local_site"].pop("image_mode", None)
            with self._lock:
                if _read_token(handler, self.api) is not None:
                    self.identity_calls += 1
                    self.seen_ips.append(realip(handler))
            if me is not None:
                site["my_user"] = self._my_user_v3(me)
            return 200, site
        if path == "/api/v4/site":
            return 200, self._site()
        if (method, path) not in _ROUTES[self.api]:
            return 200, {"ok": True}
        if path == "/api/v4/account":
            with self._lock:
                self.identity_calls += 1
                self.seen_ips.append(realip(handler))
            if me is None:
                return self._error(401, "incorrect_login")
            return 200, {
                "local_user_view": {
                    "local_user": {"id": me.id, "person_id": me.id, "admin": me.admin},
                    "person": me.person_v4(),
                    "banned": me.banned,
                },
                "follows": [],
                "moderates": self._moderates(me),
                "multi_community_follows": [],
                "community_blocks": [],
                "instance_communities_blocks": [],
                "instance_persons_blocks": [],
                "person_blocks": [],
                "keyword_blocks": [],
                "discussion_languages": [],
            }
        by_name = {a.name: a for a in self.people}
        if path == "/api/v3/user":
            who = by_name.get(query.get("username", ""))
            if who is None:
                return self._error(404, "couldnt_find_person")
            return 200, {
                "person_view": {
                    "person": who.person_v3(),
                    "counts": who.counts(),
                    "is_admin": who.admin,
                },
                "comments": [],
                "posts": [],
                "moderates": self._moderates(who, authenticated=me is not None),
            }
        if path == "/api/v4/person":
            who = by_name.get(query.get("username", ""))
            if who is None:
                return self._error(404, "not_found")
            return 200, {
                "person_view": {
                    "person": who.person_v4(),
                    "is_admin": who.admin,
                    "banned": who.banned,
                },
                "moderates": self._moderates(who),
                "multi_communities_created": [],
            }
        return 404, _EMPTY


def running_double(version: str) -> Iterator[LemmyDouble]:
    """A started double for a fixture; stopped afterwards."""
    double = LemmyDouble(version)
    double.start()
    try:
        yield double
    finally:
        double.stop()
