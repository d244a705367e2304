"""`warden doctor`: is the deployment wired the way Warden's settings assume?

Warden only protects an instance when pict-rs asks it about every image, Lemmy
talks to pict-rs through it, nginx asks it before passing API calls on, and the
limits agree. Each check here reads what it can reach — pict-rs's config file
or PICTRS__* environment, Lemmy's site settings through the API, nginx through
a probe — and says, for every problem, how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from warden.config import Settings
from warden.jobs.doctor_pictrs import check_pictrs, get, pictrs_config
from warden.jobs.findings import INFO, OK, PROBLEM, Finding

__all__ = ["INFO", "OK", "PROBLEM", "Finding", "check_pictrs", "diagnose", "pictrs_config"]
PROBE_HEADER = "X-Warden-Probe"


# -- Lemmy -----------------------------------------------------------------------


def image_mode(value: object) -> str | None:
    """Lemmy's image mode, whichever way it is spelled: 0.19.4+ lemmy.hjson takes
    `ProxyAllImages` (the enum has no serde rename: LemmyNet/lemmy 0.19.5
    crates/utils/src/settings/structs.rs:99-119), 1.0 sends `proxy_all_images`
    (`#[serde(rename_all = "snake_case")]` on ImageMode: 1.0 main
    crates/db_schema_file/src/enums.rs:178-188). Returns the snake_case name."""
    if not isinstance(value, str) or not value:
        return None
    out = value[0].lower()
    for char in value[1:]:
        out += f"_{char.lower()}" if char.isupper() else char
    return out


def check_lemmy_site(site: Mapping[str, Any], api: str, settings: Settings) -> list[Finding]:
    """What Lemmy's `GET /site` says against Warden's media policy."""
    local = get(site, "site_view.local_site") or {}
    out: list[Finding] = []
    remote = settings.federated.remote_media
    if api == "v3":
        out.append(
            Finding(
                "Lemmy image_mode",
                INFO,
                "Lemmy 0.19 keeps this in lemmy.hjson, out of the API's reach: "
                "pictrs.image_mode on 0.19.4+, pictrs.cache_external_link_previews on "
                "0.19.0-0.19.3",
                "with remote_media = block never use image_mode ProxyAllImages; point "
                "pictrs.url at http://<warden>:8790/pictrs-proxy/ (with the trailing slash)",
            )
        )
        return out
    mode = image_mode(local.get("image_mode"))
    if mode == "proxy_all_images" and remote == "block":
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
    out.append(_upload_wait(local, settings))
    disabled = bool(local.get("image_upload_disabled"))
    switch = _uploads_switch(settings)
    if disabled and switch != "off":
        out.append(
            Finding(
                "Lemmy image_upload_disabled",
                PROBLEM,
                f"Lemmy refuses every upload itself, so Warden's uploads switch ({switch}) "
                "and account requirements never apply",
                "set image_upload_disabled = false and control uploads with Warden's rules.uploads",
            )
        )
    else:
        out.append(
            Finding("Lemmy image_upload_disabled", OK, f"{disabled}; Warden's switch is {switch}")
        )
    return out


def _upload_wait(local: Mapping[str, Any], settings: Settings) -> Finding:
    """Lemmy 1.0 waits `image_upload_timeout_seconds` for an upload (main
    crates/db_schema/src/source/local_site.rs:106, crates/routes/src/images/upload.rs:
    231-233); Warden's upload deadline must end first."""
    wait = local.get("image_upload_timeout_seconds")
    ours = settings.server.hook_deadline_s("upload")
    if not isinstance(wait, int | float) or ours < wait:
        return Finding("Lemmy upload wait", OK, f"Warden {ours:g} s, Lemmy {wait} s")
    return Finding(
        "Lemmy upload wait",
        PROBLEM,
        f"Lemmy waits {wait} s for an upload, Warden may take {ours:g} s",
        f"set server.deadline_upload_ms below {int(wait * 1000)}, or raise Lemmy's "
        "image_upload_timeout_seconds",
    )


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
    """POST two marked requests through nginx, neither carrying a token.

    `POST /api/v3/post` is one Warden rules on (Lemmy 0.19 and 1.0 both route it:
    LemmyNet/lemmy 0.19.3 src/api_routes_http.rs:194, 1.0.0-beta.1
    crates/api/routes_v3/src/lib.rs:63), so the snippet must ask Warden, whose
    /authz answers the probe header with a `warden_probe` refusal: nothing
    reaches Lemmy. `POST /api/v3/post/like` is one it must not ask about (votes,
    like inboxes and login never depend on Warden): a `warden_probe` there means
    the old every-POST snippet is installed. Without a token Lemmy refuses both
    itself if they do reach it."""
    base = url.rstrip("/")
    try:
        guarded = httpx.post(base + "/api/v3/post", headers={PROBE_HEADER: "1"}, timeout=timeout_s)
        free = httpx.post(
            base + "/api/v3/post/like", headers={PROBE_HEADER: "1"}, timeout=timeout_s
        )
    except httpx.HTTPError as exc:
        return Finding("nginx auth_request", PROBLEM, f"{url} did not answer: {exc}", "")
    code, free_code = _error_code(guarded), _error_code(free)
    fix = "install deploy/nginx/ (warden-routes.conf, warden.conf) as docs/deploy.md says, reload nginx"
    if guarded.status_code == 503 and code == "warden_unavailable":
        return Finding(
            "nginx auth_request",
            PROBLEM,
            f"{url} asks Warden but Warden does not answer it, so guarded POSTs are refused",
            "start Warden, or fix the address in warden-upstream.conf / warden-proxy.conf",
        )
    if not (guarded.status_code == 403 and code == "warden_probe"):
        return Finding(
            "nginx auth_request",
            PROBLEM,
            f"{url} passed the probe on (status {guarded.status_code}): nginx does not ask Warden",
            fix,
        )
    if free.status_code == 403 and free_code == "warden_probe":
        return Finding(
            "nginx auth_request",
            PROBLEM,
            f"{url} asks Warden about every POST: votes, login and federation depend on Warden",
            fix,
        )
    return Finding(
        "nginx auth_request", OK, f"{url} asks Warden about the guarded POSTs, and only those"
    )


def _error_code(answer: httpx.Response) -> str | None:
    try:
        code = answer.json().get("error")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


# -- Warden itself ---------------------------------------------------------------


def check_warden(settings: Settings) -> list[Finding]:
    out = []
    if not settings.server.proxy_allow_from:
        out.append(
            Finding(
                "pict-rs proxy callers",
                PROBLEM,
                "server.proxy_allow_from is empty: the ingest proxy refuses Lemmy, so "
                "uploads and thumbnails fail while Lemmy's pictrs.url points at it",
                "set server.proxy_allow_from to the Lemmy backends' addresses",
            )
        )
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
