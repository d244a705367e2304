"""How Lemmy finds the login token of a request, for the Lemmy double.

Written straight from the Rust source, rule by rule, and on purpose NOT from
Warden's `warden.adapters.lemmy.credentials` (nothing is imported from it): the
double must be able to disagree with Warden, or the tests could not see a
mismatch.

Lemmy's `read_auth_token` (LemmyNet/lemmy 0.19.3 crates/api/src/lib.rs:78-91;
0.19.5 and 0.19.20 crates/api/src/lib.rs:100-113; 1.0.0-beta.1
crates/api/api_utils/src/utils.rs:978-991; main :960-973):

    if let Ok(header) = Authorization::<Bearer>::parse(req) { token }
    else if let Some(cookie) = &req.cookie(AUTH_COOKIE_NAME) { cookie.value() }
    else { None }

with `AUTH_COOKIE_NAME = "jwt"` (0.19.3 crates/api_common/src/utils.rs:46;
1.0.0-beta.1 crates/api/api_utils/src/utils.rs:76). The libraries as each
Cargo.lock pins them: actix-web 4.4.0 / 4.4.1 (0.19.0 / 0.19.3, Cargo.lock:264),
4.7.0 (0.19.5, Cargo.lock:269), 4.11.0 (0.19.20, Cargo.lock:269), 4.13.0
(1.0.0-beta.1, Cargo.lock:234); actix-web-httpauth 0.8.1 / 0.8.2; cookie 0.16.2;
percent-encoding 2.3.1 / 2.3.2; http 0.2.11 / 0.2.12.

Usage (the double): `from tests.servers.lemmy_credentials import lemmy_token`;
`lemmy_token(handler.headers.items(), "v3")` (Lemmy 0.19.x) or `"v4"` (1.0).
Header values given as `str` are taken as ISO-8859-1 decoded bytes, which is
how `http.server` hands them over.
"""

from __future__ import annotations

from collections.abc import Iterable


def _semantics(version: str) -> str:
    """ "v3" for Lemmy 0.19.x (actix-web 4.4-4.11), "v4" for Lemmy 1.0 (actix-web 4.13)."""
    if version in ("v3", "0.19") or version.startswith("0.19."):
        return "v3"
    if version in ("v4", "1.0") or version.startswith("1."):
        return "v4"
    raise ValueError(f"unknown Lemmy version {version!r} (v3, v4, 0.19.x or 1.x)")


def _as_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("iso-8859-1")
    except UnicodeEncodeError:  # a test wrote a non-Latin-1 character: send it as UTF-8
        return value.encode("utf-8")


# -- actix-web-httpauth: Authorization::<Bearer>::parse -------------------------------


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    # `msg.headers().get(Self::name())`: the FIRST Authorization header, none -> Err
    # (actix/actix-extras httpauth-v0.8.1 and httpauth-v0.8.2
    #  actix-web-httpauth/src/headers/authorization/header.rs:71)
    first = next((v for k, v in headers if k.lower() == b"authorization"), None)
    if first is None:
        return None
    # `if header.len() < 8 { return Err(ParseError::Invalid) }` ("Bearer *" length)
    # (httpauth-v0.8.1 .../scheme/bearer.rs:45-48; httpauth-v0.8.2 bearer.rs:46-49)
    if len(first) < 8:
        return None
    # `header.to_str()?`: every byte must be `b >= 32 && b < 127 || b == b'\t'`
    # (hyperium/http v0.2.12 src/header/value.rs:251-261 and :583-585)
    for byte in first:
        if byte != 0x09 and not 0x20 <= byte <= 0x7E:
            return None
    text = first.decode("ascii")
    # `.splitn(2, ' ')`, first part must be `Some("Bearer")` (MissingScheme otherwise),
    # the second part is the token, not trimmed (httpauth-v0.8.1 bearer.rs:50-57;
    # httpauth-v0.8.2 bearer.rs:51-58)
    space = text.find(" ")
    if space == -1:
        return None  # one part only: `parts.next().ok_or(ParseError::Invalid)`
    if text[:space] != "Bearer":
        return None
    return text[space + 1 :]


# -- the `cookie` crate: Cookie::parse_encoded ----------------------------------------

# `str::trim`: Unicode White_Space (rust-lang/rust library/core/src/str/mod.rs `trim`,
# `char::is_whitespace`; Unicode PropList.txt White_Space)
_WHITE_SPACE_RANGES = (
    (0x09, 0x0D),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)


def _is_white_space(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _WHITE_SPACE_RANGES)


def _rust_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_white_space(text[start]):
        start += 1
    while end > start and _is_white_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _percent_decode(text: str) -> bytes:
    # percent-encoding `percent_decode` + `after_percent_sign`: `%` followed by two
    # ASCII hex digits becomes that byte, any other `%` stays a `%`
    # (servo/rust-url 00e9e18 (percent-encoding 2.3.1) percent_encoding/src/lib.rs:355-386)
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    hexdigits = b"0123456789abcdefABCDEF"
    while i < len(raw):
        pair = raw[i + 1 : i + 3]
        if raw[i] == 0x25 and len(pair) == 2 and all(b in hexdigits for b in pair):
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(raw[i])
        i += 1
    return bytes(out)


def _parse_encoded(cookie_str: str) -> tuple[str, str]:
    """One cookie, or ValueError where `Cookie::parse_encoded` returns Err.

    rwf2/cookie-rs 0.16.2 src/parse.rs `parse_inner` (:124-158): `find('=')` or
    MissingPair (:129-134); `key[..i].trim()` and `value[i+1..].trim()`, then
    `trim_quotes(value).trim()` (:130-132); empty name -> EmptyName (:137-138);
    `name_val_decoded` percent-decodes name and value, `decode_utf8()?` (:85-90).
    """
    eq = cookie_str.find("=")
    if eq < 0:
        raise ValueError("MissingPair")
    name = _rust_trim(cookie_str[:eq])
    value = _rust_trim(cookie_str[eq + 1 :])
    # `trim_quotes` (src/parse.rs:109-118): `s.len() < 2` is a byte length; one
    # surrounding pair of `"` is dropped
    if len(value.encode("utf-8")) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    value = _rust_trim(value)
    if name == "":
        raise ValueError("EmptyName")
    try:
        return _percent_decode(name).decode("utf-8"), _percent_decode(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("Utf8Error") from exc


# -- actix-web: HttpRequest::cookies / HttpRequest::cookie ----------------------------


def _cookies(headers: list[tuple[bytes, bytes]], semantics: str) -> list[tuple[str, str]] | None:
    """`HttpRequest::cookies()`: Ok(list) or None for Err.

    actix/actix-web web-v4.4.1 actix-web/src/request.rs:314-333 (same at
    web-v4.4.0, web-v4.7.0; web-v4.11.0 :345-364): for every Cookie header
    (`get_all(COOKIE)`, in order), `str::from_utf8(..)?`, `split(';')`, `trim()`,
    skip empty, `Cookie::parse_encoded(cookie_str)?` -- any error is the whole
    list's error. web-v4.13.0 request.rs:421-440: `from_utf8(..)?` still fails
    the list, but `if let Ok(cookie) = Cookie::parse_encoded(..)` skips only
    the unparsable cookie.
    """
    found: list[tuple[str, str]] = []
    for name, raw in headers:
        if name.lower() != b"cookie":
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        for part in text.split(";"):
            cookie_str = _rust_trim(part)
            if cookie_str == "":
                continue
            try:
                found.append(_parse_encoded(cookie_str))
            except ValueError:
                if semantics == "v3":
                    return None
    return found


def _cookie(headers: list[tuple[bytes, bytes]], semantics: str, wanted: str) -> str | None:
    # `HttpRequest::cookie(name)`: Err from cookies() -> None; else the first cookie
    # with `cookie.name() == name` (web-v4.4.1 request.rs:337-346; web-v4.13.0 :444-453)
    cookies = _cookies(headers, semantics)
    if cookies is None:
        return None
    for name, value in cookies:
        if name == wanted:
            return value
    return None


def lemmy_token(headers: Iterable[tuple[str | bytes, str | bytes]], version: str) -> str | None:
    """The token Lemmy `version` ("v3" = 0.19.x, "v4" = 1.0) takes from these headers."""
    semantics = _semantics(version)
    raw = [(_as_bytes(k), _as_bytes(v)) for k, v in headers]
    token = _bearer(raw)
    if token is not None:
        return token
    return _cookie(raw, semantics, "jwt")
