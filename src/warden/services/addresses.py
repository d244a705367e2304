"""IP addresses and networks as Warden's allow-lists read them: pure functions.

Used by the request side (web/peers.py: who is calling) and by the settings
checks (services/exposure.py: does an allow-list admit everyone, is a listen
address loopback), so neither depends on the other.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

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


def is_loopback_host(host: str) -> bool:
    """True for a listen address only this machine can reach (127.0.0.0/8, ::1,
    localhost); a wildcard, a public address or any other name is not."""
    if host.strip().lower() == "localhost":
        return True
    address = parse_address(host)
    return address is not None and address.is_loopback
