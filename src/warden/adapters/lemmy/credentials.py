"""The Lemmy login token of a request, read byte for byte the way Lemmy reads it.

`/authz` must judge exactly the account Lemmy will act as. Lemmy's
`read_auth_token` takes the token from the FIRST `Authorization` header when
actix-web-httpauth parses it as `Bearer`, else from the FIRST cookie named
`jwt` across all `Cookie` headers, as actix-web and the `cookie` crate parse
them (LemmyNet/lemmy 0.19.3 crates/api/src/lib.rs:78-91, 0.19.5 and 0.19.20
crates/api/src/lib.rs:100-113, 1.0.0-beta.1
crates/api/api_utils/src/utils.rs:978-991; cookie name `jwt`: 0.19.3
crates/api_common/src/utils.rs:46, 1.0.0-beta.1
crates/api/api_utils/src/utils.rs:76). A reading that differs from Lemmy's in
any detail (scheme case, a second header, percent-encoding, quotes) lets one
account be judged while Lemmy acts as another.

The libraries, as each Lemmy's Cargo.lock pins them: actix-web 4.4.0 (Lemmy
0.19.0, Cargo.lock:264), 4.4.1 (0.19.3, Cargo.lock:264), 4.7.0 (0.19.5, Cargo.lock:269),
4.11.0 (0.19.20, Cargo.lock:269) and 4.13.0 (1.0.0-beta.1, Cargo.lock:234);
actix-web-httpauth 0.8.1 (0.19.0-0.19.3) and 0.8.2 (0.19.5+, 1.0), whose
Bearer parsing is the same; cookie 0.16.2 everywhere; http 0.2.11/0.2.12.

The one difference between the versions: a cookie that fails to parse makes
actix-web <= 4.12 (Lemmy 0.19) drop every cookie of the request, while 4.13
(Lemmy 1.0) skips only that cookie. So Lemmy 0.19 reads either the same token
as 1.0 or none at all, and with none it refuses every mapped activity itself
(401 `incorrect_login`: the session middleware drops a missing or invalid
token, LemmyNet/lemmy 0.19.3 src/session_middleware.rs:67-78, and the
`LocalUserView` extractor those endpoints take refuses,
crates/db_views/src/local_user_view.rs:116-125, crates/utils/src/error.rs:57-61;
1.0.0-beta.1 crates/routes/src/middleware/session.rs:68-78,
crates/db_views/local_user/src/impls.rs:215-224). Judging the token 1.0 reads is therefore exact on 1.0 and
harmless on 0.19: Warden never needs to know which version is in front.

Where a request carries more than one Lemmy credential that disagree (an old
account's token in one channel and a new account's in the other, two `jwt`
cookies, a `bearer` header Lemmy ignores beside a cookie it reads), some
reader somewhere could disagree with Lemmy, so Warden refuses the mapped
activity rather than guess. Clients never do this: lemmy-ui sends the same
token as cookie and header, apps send only the header.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

#: The cookie Lemmy reads (LemmyNet/lemmy 0.19.3 crates/api_common/src/utils.rs:46).
COOKIE_NAME = "jwt"

#: Rust's `str::trim` removes Unicode `White_Space` characters (rust-lang/rust
#: library/core/src/str/mod.rs `trim` -> `char::is_whitespace`); Python's
#: `str.strip()` would also remove U+001C..U+001F, so the set is spelled out.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)

HeaderPairs = Iterable[tuple[bytes | str, bytes | str]]


class CredentialKind(enum.Enum):
    """What `/authz` can say about the login on a request."""

    NONE = "none"  # no Lemmy credential at all: anonymous (Lemmy refuses mapped activities)
    TOKEN = "token"  # noqa: S105 - exactly one token, the one Lemmy acts as
    UNREADABLE = "unreadable"  # a credential Lemmy cannot use: it will refuse the request
    AMBIGUOUS = "ambiguous"  # several credentials that disagree: refuse, never guess


@dataclass(frozen=True)
class Credentials:
    """The reading of one request: each Lemmy version's token and the verdict on them."""

    kind: CredentialKind
    token: str | None  # set only for TOKEN: the token Lemmy acts as
    v3: str | None  # what Lemmy 0.19 (actix-web 4.4-4.11) reads
    v4: str | None  # what Lemmy 1.0 (actix-web 4.13) reads
    detail: str = ""  # why, in words, for the refusal and the log

    @property
    def code(self) -> str:
        """The Lemmy-style error code of a refusal (empty for NONE and TOKEN)."""
        if self.kind is CredentialKind.UNREADABLE:
            return "incorrect_login"
        if self.kind is CredentialKind.AMBIGUOUS:
            return "ambiguous_login"
        return ""

    @property
    def message(self) -> str:
        """The sentence the user reads with a refusal."""
        if self.kind is CredentialKind.UNREADABLE:
            return f"Your login could not be read ({self.detail}); log out and log in again."
        if self.kind is CredentialKind.AMBIGUOUS:
            return (
                f"This request carries more than one login ({self.detail}), so it is not "
                "clear which account is acting; log out, clear this site's cookies and "
                "log in again."
            )
        return ""


def _raw(value: bytes | str) -> bytes:
    # ASGI servers and http.server hand header bytes over as ISO-8859-1 text
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _values(headers: HeaderPairs, name: str) -> list[bytes]:
    """Every value of header `name`, in the order received (names are case-insensitive)."""
    return [_raw(v) for k, v in headers if _raw(k).decode("latin-1").lower() == name]


# -- Authorization: Bearer (actix-web-httpauth) ---------------------------------------


def bearer_token(authorization: list[bytes]) -> str | None:
    """The token of `Authorization: Bearer <token>` as actix-web-httpauth parses it, else None."""
    if not authorization:
        return None
    # only the first header: `msg.headers().get(..)` (actix/actix-extras httpauth-v0.8.1
    # actix-web-httpauth/src/headers/authorization/header.rs:71)
    value = authorization[0]
    # "Bearer *" length: at least 8 bytes (httpauth-v0.8.1 .../scheme/bearer.rs:45-48)
    if len(value) < 8:
        return None
    # `HeaderValue::to_str`: visible ASCII or tab only (hyperium/http v0.2.12
    # src/header/value.rs:251-261, 583-585); the Bearer parse fails otherwise
    if any(not (32 <= b < 127 or b == 9) for b in value):
        return None
    # `splitn(2, ' ')`: exactly the scheme `Bearer` (case-sensitive), then everything
    # after the first space, untrimmed (httpauth-v0.8.1 .../scheme/bearer.rs:50-57)
    scheme, space, token = value.decode("ascii").partition(" ")
    if scheme != "Bearer" or not space:
        return None
    return token


# -- Cookie (actix-web HttpRequest::cookies, cookie crate parse_encoded) ---------------


def _trim_quotes(s: str) -> str:
    # rwf2/cookie-rs 0.16.2 src/parse.rs:109-118 (one pair of surrounding double quotes)
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    return s


def parse_cookie(piece: str) -> tuple[str, str] | None:
    """`Cookie::parse_encoded` of one `name=value` piece; None where it fails to parse.

    rwf2/cookie-rs 0.16.2 src/parse.rs:124-158: the name is everything before
    the first `=`, trimmed; the value everything after it, trimmed, one pair
    of quotes removed, trimmed again; an empty name or no `=` is an error; both
    are then percent-decoded (src/parse.rs:85-90, servo/rust-url
    percent-encoding 2.3.1 `percent_decode`: `%` + two hex digits, anything
    else kept as is) and must be UTF-8.
    """
    key, eq, rest = piece.partition("=")
    if not eq:
        return None  # ParseError::MissingPair (src/parse.rs:134)
    name = key.strip(RUST_WHITESPACE)
    value = _trim_quotes(rest.strip(RUST_WHITESPACE)).strip(RUST_WHITESPACE)
    if not name:
        return None  # ParseError::EmptyName (src/parse.rs:137-138)
    try:
        return unquote_to_bytes(name).decode("utf-8"), unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None  # ParseError::Utf8Error (src/parse.rs:89-90)


def parsed_cookies(cookie_headers: list[bytes], *, skip_unparsable: bool) -> list[tuple[str, str]]:
    """The request's cookies as actix-web's `HttpRequest::cookies` lists them.

    Every `Cookie` header in order, each UTF-8 or the whole list is an error,
    split on `;`, pieces trimmed, empty pieces skipped (actix/actix-web
    web-v4.4.1 actix-web/src/request.rs:314-333; web-v4.11.0 :345-364).
    A piece that fails to parse: actix-web <= 4.11 fails the whole list (the
    `?` at web-v4.4.1 request.rs:323, web-v4.11.0 :354), 4.13 skips it
    (`skip_unparsable`; web-v4.13.0 request.rs:428-431). A header that is not
    UTF-8 fails the whole list on every version (web-v4.13.0 request.rs:427).
    `HttpRequest::cookie` turns a failed list into "no cookie" (web-v4.4.1
    request.rs:337-346, web-v4.13.0 :444-453).
    """
    cookies: list[tuple[str, str]] = []
    for header in cookie_headers:
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            return []
        for piece in text.split(";"):
            piece = piece.strip(RUST_WHITESPACE)
            if not piece:
                continue
            cookie = parse_cookie(piece)
            if cookie is not None:
                cookies.append(cookie)
            elif not skip_unparsable:
                return []
    return cookies


def jwt_cookie(cookie_headers: list[bytes], *, skip_unparsable: bool) -> str | None:
    """`req.cookie("jwt")`: the FIRST cookie whose decoded name is exactly `jwt`."""
    # actix/actix-web web-v4.4.1 actix-web/src/request.rs:340 `cookie.name() == name`
    for name, value in parsed_cookies(cookie_headers, skip_unparsable=skip_unparsable):
        if name == COOKIE_NAME:
            return value
    return None


def lemmy_reads(headers: HeaderPairs) -> tuple[str | None, str | None]:
    """The token Lemmy 0.19 and Lemmy 1.0 would read from these headers: (v3, v4)."""
    pairs = list(headers)
    bearer = bearer_token(_values(pairs, "authorization"))
    if bearer is not None:
        return bearer, bearer
    cookies = _values(pairs, "cookie")
    return (
        jwt_cookie(cookies, skip_unparsable=False),
        jwt_cookie(cookies, skip_unparsable=True),
    )


# -- every credential on the request, read leniently ----------------------------------


def _lenient_decode(text: str) -> str:
    return unquote_to_bytes(text).decode("utf-8", "replace")


def _candidates(pairs: list[tuple[bytes | str, bytes | str]]) -> tuple[set[str], list[str]]:
    """Every token any reader could take from the request, and where each was found.

    Broader than Lemmy on purpose: any `bearer` scheme in any case and any
    separator, in every `Authorization` header; every cookie whose name reads
    `jwt` in any case once decoded, in every `Cookie` header, even where the
    piece or the header would not parse. Empty tokens name nobody (Lemmy's
    logout leaves `jwt=`) and only count as a credential being present.
    """
    tokens: set[str] = set()
    places: list[str] = []
    for value in _values(pairs, "authorization"):
        text = value.decode("latin-1").strip(RUST_WHITESPACE)
        if text[:6].lower() == "bearer":
            tokens.add(text[6:].strip(RUST_WHITESPACE))
            places.append("an Authorization header")
    for header in _values(pairs, "cookie"):
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            text = header.decode("latin-1")
        for piece in text.split(";"):
            key, eq, rest = piece.partition("=")
            if not eq or _lenient_decode(key.strip(RUST_WHITESPACE)).lower() != COOKIE_NAME:
                continue
            value_text = _trim_quotes(rest.strip(RUST_WHITESPACE)).strip(RUST_WHITESPACE)
            tokens.add(_lenient_decode(value_text))
            places.append("a jwt cookie")
    tokens.discard("")
    return tokens, places


def _count(places: list[str]) -> str:
    """ "a jwt cookie", "a jwt cookie" -> "2 jwt cookies"."""
    counted = []
    for place in sorted(set(places)):
        n = places.count(place)
        counted.append(place if n == 1 else f"{n} {place.split(' ', 1)[1]}s")
    return " and ".join(counted)


def printable_token(token: str) -> bool:
    """False for a token Lemmy's JWT decoding can only refuse (not printable ASCII).

    Lemmy validates the token as a JWT (LemmyNet/lemmy 0.19.3
    crates/api_common/src/claims.rs:29, 1.0.0-beta.1
    crates/api/api_utils/src/claims.rs:31): base64url segments joined by dots,
    so spaces, control characters and non-ASCII can never be a login. (The
    full JWT shape is checked before any look-up by `Identity.facts`; this
    check keeps tokens that could not even travel in a header out of it.)
    """
    return bool(token) and all(33 <= ord(c) < 127 for c in token)


def read_credentials(headers: HeaderPairs) -> Credentials:
    """What Lemmy 0.19 and 1.0 read from these (raw, repeated) headers, and the verdict."""
    pairs = list(headers)
    v3, v4 = lemmy_reads(pairs)
    tokens, places = _candidates(pairs)
    if v4 is None:
        if not places:
            return Credentials(CredentialKind.NONE, None, v3, v4)
        where = " or ".join(sorted(set(places)))
        detail = f"Lemmy finds no usable login in {where}"
        return Credentials(CredentialKind.UNREADABLE, None, v3, v4, detail)
    if not printable_token(v4):
        detail = "the token is not a Lemmy login token"
        return Credentials(CredentialKind.UNREADABLE, None, v3, v4, detail)
    others = tokens - {v4}
    if others:
        detail = f"{len(others) + 1} different tokens across {_count(places)}"
        return Credentials(CredentialKind.AMBIGUOUS, None, v3, v4, detail)
    return Credentials(CredentialKind.TOKEN, v4, v3, v4)
