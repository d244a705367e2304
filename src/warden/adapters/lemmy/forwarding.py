"""The client address Lemmy charges a request to, so Warden's look-ups can carry it.

Lemmy rate-limits per client IP, and reads that IP with actix-web's
`ConnectionInfo::realip_remote_addr` (LemmyNet/lemmy 0.19.3
crates/utils/src/rate_limit/mod.rs:185 and :204-209; 1.0.0-beta.1
crates/utils/src/rate_limit/mod.rs:143-144): the first `for=` of the
`Forwarded` headers, else the first value of the first `X-Forwarded-For`, else
the peer address (actix/actix-web web-v4.4.0 actix-web/src/info.rs:74-111 and
:128-129; web-v4.13.0 info.rs:88-143, which also strips the port and brackets
from `for=`, see `bare_address`). Every look-up Warden makes comes from
Warden's own address, so without help they would all share one bucket (180
requests a minute by default) that anyone can empty with junk tokens.
`client_address` reads the original request's headers (nginx passes them to
`/authz`) the way actix does, and the Lemmy client sends the result as
`X-Forwarded-For`, so Lemmy charges the user's own bucket, exactly as it does
for the request Warden is judging.

The two Lemmy lines differ on a few malformed forms (`[v6]` without a port,
`x::1]`, an unbracketed IPv6 or `[1.2.3.4]:80` in `for=`): `lemmy_major`
picks which one to follow (0, the default: Lemmy 0.19.3, whose Cargo.lock pins
actix-web 4.4.1; 1: Lemmy 1.0.0-beta.1, which pins actix-web 4.13.0).

nginx's `X-Real-IP` (its `$remote_addr`) is the last resort: when the client
sent no `X-Forwarded-For`, lemmy-ansible's `$proxy_add_x_forwarded_for` makes
that address the first one Lemmy sees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from warden.adapters.lemmy.credentials import RUST_WHITESPACE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ASCII_DIGITS = frozenset("0123456789")


def _visible(value: str) -> bool:
    """http's `HeaderValue::to_str` succeeds: every byte visible ASCII or a tab
    (hyperium/http v0.2.9 src/header/value.rs:251-261 and :583-585; v1.4.2
    :240-250 and :552-554). actix-web skips a `Forwarded` header that fails it
    (`filter_map(|hdr| hdr.to_str().ok())`, web-v4.4.0 info.rs:79) and takes no
    address from an `X-Forwarded-For` that fails it (`first_header_value`, :26)."""
    return all(" " <= c < "\x7f" or c == "\t" for c in value)


def _trim(value: str) -> str:
    """Rust's `str::trim` (Unicode White_Space, not Python's wider `str.strip()`)."""
    return value.strip(RUST_WHITESPACE)


def _unquote(value: str) -> str:
    # actix-web web-v4.4.0 actix-web/src/info.rs:20-22:
    # val.trim().trim_start_matches('"').trim_end_matches('"')
    return _trim(value).strip('"')


def bare_address(value: str) -> str:
    """actix-web web-v4.13.0 actix-web/src/info.rs:24-36 (`for=` only, since 4.8.0):
    `[v6]:port` -> `v6`, `[v6]` -> `v6`, otherwise everything before the first `:`."""
    if value.startswith("["):
        # split("]:").next() is always Some, then trim_start_matches('[') / trim_end_matches(']')
        return value.split("]:", 1)[0].lstrip("[").rstrip("]")
    return value.split(":", 1)[0]


def _decimal(text: str, bound: int) -> bool:
    """Rust's `read_number(10, None, true)` into an integer type of maximum `bound`
    (core::net::parser `read_port` / `read_scope_id`): one or more ASCII digits,
    leading zeros allowed and not counted, the value at most `bound`."""
    if not text or not _ASCII_DIGITS.issuperset(text):
        return False
    significant = text.lstrip("0")
    # no int() of thousands of digits: Python refuses more than 4,300
    return len(significant) <= len(str(bound)) and int(significant or "0") <= bound


def rust_ip(text: str) -> IPAddress | None:
    """Rust's `IpAddr::from_str`: dotted-quad IPv4 of ASCII digits without leading
    zeros, or IPv6 (1-4 hex digits a group, one `::`, an IPv4 tail), no zone.

    Python's `ip_address` reads the same forms, except that it also takes an
    IPv6 zone (`fe80::1%eth0`), which Rust refuses, so `%` is refused here.
    """
    if not text.isascii() or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def rust_socket_ip(text: str) -> IPAddress | None:
    """Rust's `SocketAddr::from_str(text).ip()`: `v4:port`, or `[v6]:port` with an
    optional decimal `%scope` inside the brackets; the port a decimal u16."""
    host, colon, port = text.rpartition(":")
    if not colon or not _decimal(port, 65535):
        return None
    if host.startswith("[") and host.endswith("]"):
        inner, percent, scope = host[1:-1].partition("%")
        if percent and not _decimal(scope, 2**32 - 1):
            return None
        v6 = rust_ip(inner)
        return v6 if v6 is not None and v6.version == 6 else None  # the zone is dropped
    v4 = rust_ip(host)
    return v4 if v4 is not None and v4.version == 4 else None


def parse_ip(value: str, *, lemmy_major: int = 0) -> str | None:
    """`value` as the IP address Lemmy reads from it, or None where Lemmy reads none
    (and charges 127.0.0.1, i.e. everyone); `value` is not trimmed, as in Lemmy.

    Lemmy 0.19.3 crates/utils/src/rate_limit/mod.rs:211-221: a value ending in `]`
    is `IpAddr::from_str` of what lies between its first character and the `]`
    (`[::1]`, and also `x::1]`); else `IpAddr`, else `SocketAddr`. Lemmy
    1.0.0-beta.1 crates/utils/src/rate_limit/input.rs:38-47: `IpAddr`, else
    `SocketAddr`, nothing special about `]`. Lemmy only ever reads visible ASCII.
    """
    if not value.isascii():
        return None
    if lemmy_major < 1 and value.endswith("]"):
        # `addr.strip_suffix(']')` then `s.get(1..)?`: None when nothing is left
        stripped = value[:-1]
        found = rust_ip(stripped[1:]) if stripped else None
    else:
        found = rust_ip(value)
        if found is None:
            found = rust_socket_ip(value)
    return None if found is None else str(found)


def client_address(
    forwarded: Iterable[str],
    x_forwarded_for: str | None,
    x_real_ip: str | None,
    *,
    lemmy_major: int = 0,
) -> str | None:
    """The client IP Lemmy would rate-limit this request under, or None when unknown.

    `forwarded` lists the `Forwarded` header values in order, `x_forwarded_for` is
    the first `X-Forwarded-For` header (`HeaderMap::get`), as latin-1 text.
    """
    for header in filter(_visible, forwarded):
        # web-v4.4.0 info.rs:76-112: split(';'), then split(','), then
        # pair.trim().splitn(2, '='), name.trim().to_lowercase() == "for", first wins
        for part in (p for chunk in header.split(";") for p in chunk.split(",")):
            name, sep, value = _trim(part).partition("=")
            if sep and _trim(name).lower() == "for":
                found = _unquote(value)
                if lemmy_major >= 1:
                    found = bare_address(found)  # web-v4.13.0 info.rs:117
                return parse_ip(found, lemmy_major=lemmy_major)
    # without one from the client, nginx's `$proxy_add_x_forwarded_for` sends Lemmy
    # `X-Forwarded-For: $remote_addr`, which Warden gets as X-Real-IP: read it the same way
    xff = x_real_ip if x_forwarded_for is None else x_forwarded_for
    # `first_header_value` (web-v4.4.0 info.rs:25-29): to_str, split(','), first, trim
    if xff is None or not _visible(xff):
        return None
    return parse_ip(_trim(xff.split(",", 1)[0]), lemmy_major=lemmy_major)
