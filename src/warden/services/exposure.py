"""The production-safety check: what `warden serve` refuses to open to the network.

On loopback only this machine can call Warden. Beyond it (`server.host` a
wildcard, a LAN or public address), anyone who reaches the port could call the
validation hook (accepting their own media, or filling the decisions log) and
the ingest proxy (which reaches pict-rs's API, internal endpoints included), so
Warden starts only when:

- the hook is closed to strangers: `server.pictrs_secret` or
  `server.pictrs_allow_from`;
- the proxy is: `server.proxy_allow_from` (loopback by default) — an
  allow-list that admits every address (`0.0.0.0/0`, `::/0`) protects nothing
  and does not count;
- evidence is sealed with a key the admin holds: with preservation on and no
  `evidence.key`, Warden generates one into the data folder beside the
  evidence it protects (fine on a laptop; in production the key must be
  configured, backed up and kept apart: `warden evidence keygen`);
- and, on any address, no trusted proxy overlaps the Lemmy backends.

`check_listening` raises one `ConfigError` naming every setting to set.
"""

from __future__ import annotations

from warden.config import Settings
from warden.errors import ConfigError
from warden.services.addresses import is_loopback_host, networks


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


def evidence_problems(settings: Settings, host: str) -> list[str]:
    """Beyond loopback, preserved evidence must be sealed with a configured key,
    not one Warden generated next to it."""
    evidence = settings.evidence
    if is_loopback_host(host) or not evidence.enabled or evidence.key is not None:
        return []
    return [
        f"evidence would be sealed with a key generated into {settings.data_dir} (beside the "
        "evidence it protects) while Warden listens on "
        f"{host}: set evidence.key (`warden evidence keygen`; WARDEN_EVIDENCE__KEY), keep a "
        "copy apart from the data folder, or listen on loopback"
    ]


def listening_problems(settings: Settings, host: str) -> list[str]:
    """Every reason not to listen on `host` with these settings (empty: safe)."""
    return (
        trust_problems(settings)
        + exposure_problems(settings, host)
        + evidence_problems(settings, host)
    )


def check_listening(settings: Settings, host: str) -> None:
    """Refuse (ConfigError naming the settings to set) an unsafe production setup."""
    problems = listening_problems(settings, host)
    if problems:
        raise ConfigError("Warden refuses to listen: " + "; ".join(problems))
