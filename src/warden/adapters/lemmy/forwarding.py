"""The client address Lemmy charges a request to, so Warden's look-ups can carry it.

Lemmy rate-limits per client IP, and reads that IP with actix-web's
`ConnectionInfo::realip_remote_addr` (LemmyNet/lemmy 0.19.3
crates/utils/src/rate_limit/mod.rs:185 and :204-209; 1.0.0-beta.1
crates/utils/src/rate_limit/mod.rs:143-144): the first `for=` of the
`Forwarded` headers, else the first value of `X-Forwarded-For`, else the
peer address (actix/actix-web web-v4.4.0 actix-web/src/info.rs:74-111 and
:128-129; unchanged in web-v4.13.0 info.rs:88-143). Every look-up Warden makes
comes from Warden's own address, so without help they would all share one
bucket (180 requests a minute by default) that anyone can empty with junk
tokens. `client_address` reads the original request's headers (nginx passes
them to `/authz`) the way actix does, and the Lemmy client sends the result
as `X-Forwarded-For`, so Lemmy charges the user's own bucket, exactly as it
does for the request Warden is judging.

nginx's `X-Real-IP` (its `$remote_addr`) is the last resort: when the client
sent no `X-Forwarded-For`, lemmy-ansible's `$proxy_add_x_forwarded_for` makes
that address the first one Lemmy sees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def _unquote(value: str) -> str:
    # actix-web web-v4.4.0 actix-web/src/info.rs:20-22
    return value.strip().strip('"')


def parse_ip(value: str) -> str | None:
    """`value` as an IP address Lemmy would accept (`1.2.3.4`, `1.2.3.4:5`, `[::1]:5`, `::1`).

    Mirrors Lemmy's `parse_ip` (0.19.3 crates/utils/src/rate_limit/mod.rs:211-221);
    anything else is None (Lemmy would charge it to 127.0.0.1, i.e. to everyone).
    """
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    else:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            host, sep, port = text.rpartition(":")
            if not sep or not port.isdigit():
                return None
            text = host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(
    forwarded: Iterable[str], x_forwarded_for: str | None, x_real_ip: str | None
) -> str | None:
    """The client IP Lemmy would rate-limit this request under, or None when unknown."""
    for header in forwarded:
        for part in header.replace(";", ",").split(","):
            name, sep, value = part.strip().partition("=")
            if sep and name.strip().lower() == "for":
                return parse_ip(_unquote(value))
    if x_forwarded_for is not None:
        return parse_ip(x_forwarded_for.split(",", 1)[0])
    if x_real_ip:
        return parse_ip(x_real_ip)
    return None
