"""Client addresses: who is calling, for the allow-lists that decide by address.

The client is the TCP peer, unless that peer is one of `server.trusted_proxies`
(a reverse proxy in front of Warden); then X-Forwarded-For is read from the
right, and the first address that is not itself a trusted proxy is the client
(nginx's `real_ip_recursive on` rule). Everything to the left of it was written
by someone Warden does not trust, so it is never used. An entry that is not an
IP address ends the walk with no address at all, and an allow-list refuses it:
fail closed rather than guess.

`warden serve` runs uvicorn with proxy_headers off, so the ASGI `client` is the
TCP peer: uvicorn's own rule would take X-Forwarded-For from any peer it is
told to trust, and Lemmy adds `X-Forwarded-For: <uploader ip:port>` to every
request it sends through the ingest proxy (LemmyNet/lemmy 0.19.3
crates/routes/src/images.rs:107; 1.0 main crates/routes/src/images/upload.rs:227).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> list[IPNetwork]:
    """Parsed networks (settings validate them, so this does not fail on settings)."""
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in allowed)


def forwarded_client(
    peer: IPAddress | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The client behind `peer`: the peer itself unless it is a trusted proxy; then the
    rightmost X-Forwarded-For entry that is not a trusted proxy (all header lines in
    order, comma-separated). No header from a trusted proxy: the proxy is the client."""
    if not in_networks(peer, trusted):
        return peer
    entries = [item for line in forwarded_for for item in line.split(",") if item.strip()]
    client = peer
    for entry in reversed(entries):
        client = parse_address(entry)
        if not in_networks(client, trusted):
            return client
    return client


#: The app state key naming which setting lists this listener's trusted proxies.
TRUST_SETTING = "trusted_proxies_setting"


def client_address(connection: HTTPConnection) -> IPAddress | None:
    """Who is calling, by the rule above, with this listener's trusted proxies:
    `server.trusted_proxies` on the main listener, `server.public_trusted_proxies` on
    the public one (web/app.py sets which in the app's state)."""
    peer = parse_address(connection.client.host) if connection.client else None
    server = connection.app.state.services.settings.server
    setting = getattr(connection.app.state, TRUST_SETTING, "trusted_proxies")
    trusted = networks(getattr(server, setting))
    if not trusted:
        return peer
    return forwarded_client(peer, connection.headers.getlist("x-forwarded-for"), trusted)


def is_loopback_host(host: str) -> bool:
    """True for a listen address only this machine can reach (127.0.0.0/8, ::1,
    localhost); a wildcard, a public address or any other name is not."""
    if host.strip().lower() == "localhost":
        return True
    address = parse_address(host)
    return address is not None and address.is_loopback
