"""Exposure: what `warden serve` refuses to open to the network, and what it never logs.

On loopback only this machine can call Warden. Beyond it (`server.host` a
wildcard, a LAN or public address), anyone who reaches the port could call the
validation hook (accepting their own media, or filling the decisions log) and
the ingest proxy (which reaches pict-rs's API, internal endpoints included), so
`warden serve` starts only when both are closed to strangers: the hook by a
shared secret or `server.pictrs_allow_from`, the proxy by
`server.proxy_allow_from` (loopback by default). An allow-list that admits every
address (`0.0.0.0/0`, `::/0`) protects nothing and does not count.

pict-rs 0.4 can send the hook's secret only in the URL (`?secret=`), which an
access log would keep; `SecretRedaction` rewrites it before any handler sees
the record.
"""

from __future__ import annotations

import logging
import re

from warden.config import Settings
from warden.web.peers import is_loopback_host, networks


def _closed(entries: list[str]) -> bool:
    """An allow-list that admits somebody but not everybody (empty admits nobody)."""
    return all(network.prefixlen > 0 for network in networks(entries))


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """Why listening on `host` would open the hook or the proxy to anyone; empty when
    `host` is loopback or both are protected. Each problem names the settings to set."""
    if is_loopback_host(host):
        return []
    server = settings.server
    problems = []
    hook_protected = server.pictrs_secret is not None or (
        bool(server.pictrs_allow_from) and _closed(server.pictrs_allow_from)
    )
    if not hook_protected:
        problems.append(
            f"/pictrs/validate would answer anyone who reaches {host}: set server.pictrs_secret "
            "(pict-rs 0.5: external_validation = http://warden:<secret>@<warden>:8790/pictrs/"
            "validate) or server.pictrs_allow_from (pict-rs's address), or listen on loopback"
        )
    if not _closed(server.proxy_allow_from):
        problems.append(
            f"/pictrs-proxy would let anyone who reaches {host} use pict-rs's API: list only "
            "the Lemmy backends' addresses in server.proxy_allow_from"
        )
    return problems


def trust_problems(settings: Settings) -> list[str]:
    """Trusted proxies that would make the ingest proxy judge the wrong address.

    Lemmy adds `X-Forwarded-For: <uploader ip:port>` to every request it sends
    through `pictrs.url` (LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:107),
    so a Lemmy backend listed in `server.trusted_proxies` would be judged by its
    uploader's address: every upload refused, or, with a wide allow-list, decided by
    a header the uploader wrote. Refused at start, on any address."""
    server = settings.server
    lemmy = networks(server.proxy_allow_from)
    overlapping = [
        str(proxy)
        for proxy in networks(server.trusted_proxies)
        if any(proxy.version == net.version and proxy.overlaps(net) for net in lemmy)
    ]
    if not overlapping:
        return []
    return [
        f"server.trusted_proxies ({', '.join(overlapping)}) overlaps server.proxy_allow_from: "
        "Lemmy sends the uploader's address in X-Forwarded-For, so the ingest proxy would "
        "judge the uploader instead of Lemmy; list only reverse proxies at addresses Lemmy "
        "does not use (for the nginx in front of /invites: server.public_port and "
        "server.public_trusted_proxies)"
    ]


#: `secret=<value>` in a query string, up to the next separator.
SECRET_IN_URL = re.compile(r"(?i)(\bsecret=)[^&\s\"']*")


def redact(text: str) -> str:
    return SECRET_IN_URL.sub(r"\1[redacted]", text)


class SecretRedaction(logging.Filter):
    """Rewrites `secret=...` in a record's message and arguments (uvicorn's access log
    passes the path with its query string as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def redact_secrets_in_logs() -> None:
    """Attach the redaction to uvicorn's access logger and to every handler that
    writes Warden's or uvicorn's records (a logger's own filter does not see records
    of its children, a handler's does)."""
    names = ("", "uvicorn", "uvicorn.access", "uvicorn.error")
    targets: list[logging.Filterer] = [logging.getLogger("uvicorn.access")]
    for name in names:
        targets.extend(logging.getLogger(name).handlers)
    for target in targets:
        if not any(isinstance(f, SecretRedaction) for f in target.filters):
            target.addFilter(SecretRedaction())
