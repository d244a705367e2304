"""Client addresses: who is calling, for the allow-lists that decide by address.

The client is the TCP peer, unless that peer is one of `server.trusted_proxies`
(a reverse proxy in front of Warden); then X-Forwarded-For is read from the
right, and the first address that is not itself a trusted proxy is the client
(nginx's `real_ip_recursive on` rule). Everything to the left of it was written
by someone Warden does not trust, so it is never used. An entry that is not an
IP address ends the walk with no address at all, and an allow-list refuses it:
fail closed rather than guess.

The address rules themselves are plain functions (services/addresses.py, so the
settings checks can use them without the web layer); this module applies them to
a request.

`warden serve` runs uvicorn with proxy_headers off, so the ASGI `client` is the
TCP peer: uvicorn's own rule would take X-Forwarded-For from any peer it is
told to trust, and Lemmy adds `X-Forwarded-For: <uploader ip:port>` to every
request it sends through the ingest proxy (LemmyNet/lemmy 0.19.3
crates/routes/src/images.rs:107; 1.0 main crates/routes/src/images/upload.rs:227).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from warden.services.addresses import (
    IPAddress,
    forwarded_client,
    in_networks,
    is_loopback_host,
    networks,
    parse_address,
)

__all__ = [
    "TRUST_SETTING",
    "client_address",
    "forwarded_client",
    "in_networks",
    "is_loopback_host",
    "networks",
    "parse_address",
]


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
