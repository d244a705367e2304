"""`warden doctor`: is the deployment wired the way Warden's settings assume?

Warden only protects an instance when pict-rs asks it about every image, Lemmy
talks to pict-rs through it, nginx asks it before passing API calls on, and the
limits agree. Each check here reads what it can reach — pict-rs's config file
or PICTRS__* environment, Lemmy's site settings through the API, nginx through
a probe — and says, for every problem, how to fix it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from warden.config import Settings

OK, PROBLEM, INFO = "ok", "problem", "info"
PROBE_HEADER = "X-Warden-Probe"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | problem | info
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# -- pict-rs ---------------------------------------------------------------------


def pictrs_config(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """pict-rs's settings as pict-rs reads them: the TOML file, then PICTRS__A__B=v
    variables over it (keys lower-cased, nested at each `__`)."""
    config: dict[str, Any] = {}
    if path is not None:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    for key, value in (environ if environ is not None else os.environ).items():
        if not key.startswith("PICTRS__"):
            continue
        parts = key[len("PICTRS__") :].lower().split("__")
        node = config
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return config


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_pictrs(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    out: list[Finding] = []
    hook = _get(config, "media.external_validation")
    if not hook:
        out.append(
            Finding(
                "pict-rs validation hook",
                PROBLEM,
                "media.external_validation is not set: pict-rs stores images Warden never saw",
                "set PICTRS__MEDIA__EXTERNAL_VALIDATION=http://<warden>:"
                f"{settings.server.port}/pictrs/validate (pict-rs.toml: [media] external_validation)",
            )
        )
    elif "/pictrs/validate" not in str(hook):
        out.append(
            Finding(
                "pict-rs validation hook",
                PROBLEM,
                f"media.external_validation points at {hook}, not at Warden's /pictrs/validate",
                "point it at http://<warden>:8790/pictrs/validate",
            )
        )
    elif settings.server.pictrs_secret is not None and "secret=" not in str(hook):
        out.append(
            Finding(
                "pict-rs validation hook",
                PROBLEM,
                "server.pictrs_secret is set but the hook URL carries no ?secret=: every "
                "image will be refused",
                "append ?secret=<server.pictrs_secret> to media.external_validation",
            )
        )
    else:
        out.append(Finding("pict-rs validation hook", OK, f"pict-rs asks {hook}"))

    api_key = _get(config, "server.api_key")
    mine = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else None
    if not api_key:
        out.append(
            Finding(
                "pict-rs API key",
                PROBLEM,
                "server.api_key is not set: the internal API (purge) is closed to everyone",
                "set PICTRS__SERVER__API_KEY and the same value in Warden's pictrs.api_key",
            )
        )
    elif mine is None:
        out.append(
            Finding(
                "pict-rs API key",
                PROBLEM,
                "Warden's pictrs.api_key is not set: `warden purge` cannot call pict-rs",
                "set WARDEN_PICTRS__API_KEY to pict-rs's server.api_key",
            )
        )
    elif str(api_key) != mine:
        out.append(
            Finding(
                "pict-rs API key",
                PROBLEM,
                "pict-rs's server.api_key differs from Warden's pictrs.api_key",
                "make them the same",
            )
        )
    else:
        out.append(Finding("pict-rs API key", OK, "set, and Warden has the same"))

    out.extend(_limits(config, settings))
    timeout = float(_get(config, "client.timeout") or 30)
    deadline = settings.server.deadline_ms / 1000
    if deadline >= timeout:
        out.append(
            Finding(
                "deadline vs pict-rs timeout",
                PROBLEM,
                f"Warden may take {deadline:g} s; pict-rs gives up after {timeout:g} s, so "
                "slow scans fail without Warden's reason",
                f"set server.deadline_ms below {int(timeout * 1000)}",
            )
        )
    else:
        out.append(
            Finding("deadline vs pict-rs timeout", OK, f"{deadline:g} s < pict-rs's {timeout:g} s")
        )
    return out


def _limits(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    out: list[Finding] = []
    media = settings.media
    size_mb = _get(config, "media.max_file_size") or 40  # pict-rs 0.5 default, in MB
    if float(size_mb) * 1_000_000 > media.max_bytes:
        out.append(
            Finding(
                "file size limit",
                PROBLEM,
                f"pict-rs accepts {size_mb} MB, Warden refuses above {media.max_bytes:,} bytes: "
                "users upload, wait, then get Warden's refusal",
                f"set PICTRS__MEDIA__MAX_FILE_SIZE={media.max_bytes // 1_000_000} "
                "(or raise media.max_bytes)",
            )
        )
    else:
        out.append(Finding("file size limit", OK, f"pict-rs {size_mb} MB <= Warden's"))
    for key, ours, name in (
        ("media.image.max_width", media.max_side, "max_side"),
        ("media.image.max_height", media.max_side, "max_side"),
        ("media.image.max_area", media.max_pixels, "max_pixels"),
        ("media.animation.max_frame_count", media.max_frames, "max_frames"),
    ):
        theirs = _get(config, key)
        if theirs is not None and int(theirs) > ours:
            out.append(
                Finding(
                    key,
                    PROBLEM,
                    f"pict-rs allows {int(theirs):,}, Warden refuses above {ours:,} ({name})",
                    f"set PICTRS__{key.upper().replace('.', '__')}={ours}",
                )
            )
    video = _get(config, "media.video.enable")
    if video is None or str(video).lower() not in ("false", "0"):
        out.append(
            Finding(
                "video",
                PROBLEM,
                "pict-rs accepts video; Warden refuses video (it cannot scan it), so every "
                "video upload fails at the hook",
                "set PICTRS__MEDIA__VIDEO__ENABLE=false",
            )
        )
    return out


# -- Lemmy -----------------------------------------------------------------------


def check_lemmy_site(site: Mapping[str, Any], api: str, settings: Settings) -> list[Finding]:
    """What Lemmy's `GET /site` says against Warden's media policy."""
    local = _get(site, "site_view.local_site") or {}
    out: list[Finding] = []
    remote = settings.federated.remote_media
    if api == "v3":
        out.append(
            Finding(
                "Lemmy image_mode",
                INFO,
                "Lemmy 0.19 keeps image_mode in lemmy.hjson, out of the API's reach",
                "with remote_media = block use pictrs.image_mode None or StoreLinkPreviews, "
                "never ProxyAllImages; point pictrs.url at http://<warden>:8790/pictrs-proxy",
            )
        )
    else:
        mode = local.get("image_mode")
        if mode == "ProxyAllImages" and remote == "block":
            out.append(
                Finding(
                    "Lemmy image_mode",
                    PROBLEM,
                    "image_mode ProxyAllImages sends every remote image through pict-rs, and "
                    "remote_media = block refuses them all: images break everywhere",
                    "set image_mode to None (or StoreLinkPreviews), or remote_media = scan",
                )
            )
        else:
            out.append(Finding("Lemmy image_mode", OK, f"{mode} with remote_media = {remote}"))
        disabled = bool(local.get("image_upload_disabled"))
        switch = _uploads_switch(settings)
        if disabled and switch != "off":
            out.append(
                Finding(
                    "Lemmy image_upload_disabled",
                    PROBLEM,
                    f"Lemmy refuses every upload itself, so Warden's uploads switch ({switch}) "
                    "and account requirements never apply",
                    "set image_upload_disabled = false and control uploads with Warden's "
                    "rules.uploads",
                )
            )
        else:
            out.append(
                Finding(
                    "Lemmy image_upload_disabled",
                    OK,
                    f"{disabled}; Warden's switch is {switch}",
                )
            )
    return out


def _uploads_switch(settings: Settings) -> str:
    return settings.rules.uploads or "on (or as the rules file says)"


def fetch_site(settings: Settings) -> tuple[dict[str, Any], str] | Finding:
    """Lemmy's site settings and API version, or a finding saying why not."""
    base = settings.lemmy.url.rstrip("/")
    try:
        with httpx.Client(timeout=settings.lemmy.timeout_s) as client:
            for api in ("v4", "v3"):
                if settings.lemmy.api not in ("auto", api):
                    continue
                answer = client.get(f"{base}/api/{api}/site")
                if answer.status_code == 200 and "site_view" in answer.json():
                    return answer.json(), api
    except (httpx.HTTPError, ValueError) as exc:
        return Finding(
            "Lemmy API", PROBLEM, f"{base} did not answer: {exc}", "set lemmy.url to Lemmy's API"
        )
    return Finding(
        "Lemmy API", PROBLEM, f"{base} answers neither /api/v4/site nor /api/v3/site", ""
    )


# -- nginx -----------------------------------------------------------------------


def probe_nginx(url: str, timeout_s: float = 5.0) -> Finding:
    """POST a marked request through nginx (the snippet asks Warden about writes only);
    Warden's /authz refuses exactly that one, so a `warden_probe` error proves nginx
    asks Warden before passing requests on. Nothing reaches Lemmy when it works."""
    target = url.rstrip("/") + "/api/v3/warden-probe"
    try:
        answer = httpx.post(target, headers={PROBE_HEADER: "1"}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Finding("nginx auth_request", PROBLEM, f"{url} did not answer: {exc}", "")
    try:
        code = answer.json().get("error")
    except (ValueError, AttributeError):
        code = None
    if answer.status_code == 403 and code == "warden_probe":
        return Finding("nginx auth_request", OK, f"{url} asks Warden before passing API calls on")
    return Finding(
        "nginx auth_request",
        PROBLEM,
        f"{url} passed the probe on (status {answer.status_code}): nginx does not ask Warden",
        "include deploy/nginx/warden.conf in Lemmy's server block and reload nginx",
    )


# -- Warden itself ---------------------------------------------------------------


def check_warden(settings: Settings) -> list[Finding]:
    out = []
    if settings.evidence.enabled and settings.evidence.key is None:
        out.append(
            Finding(
                "evidence key",
                INFO,
                f"using the generated key file {settings.data_dir / 'evidence.key'}",
                "back it up, or set evidence.key from a secret store",
            )
        )
    if settings.lemmy.bot_token is None:
        out.append(
            Finding(
                "Lemmy bot token",
                INFO,
                "lemmy.bot_token is not set: invites, bans and `rules check --user` need it",
                "create an admin bot account and set WARDEN_LEMMY__BOT_TOKEN",
            )
        )
    return out


def diagnose(
    settings: Settings,
    *,
    pictrs_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    nginx_url: str | None = None,
    lemmy: bool = True,
) -> list[Finding]:
    """Every check that can be made with what was given."""
    config = pictrs_config(pictrs_file, environ)
    if config:
        findings = check_pictrs(config, settings)
    else:
        findings = [
            Finding(
                "pict-rs settings",
                PROBLEM,
                "no pict-rs.toml given and no PICTRS__* variables: the hook cannot be checked",
                "run with --pictrs-config /path/to/pict-rs.toml (or pict-rs's environment)",
            )
        ]
    if lemmy:
        site = fetch_site(settings)
        findings += [site] if isinstance(site, Finding) else check_lemmy_site(*site, settings)
    if nginx_url:
        findings.append(probe_nginx(nginx_url))
    return findings + check_warden(settings)
