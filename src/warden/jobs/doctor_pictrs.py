"""`warden doctor`'s pict-rs half: does pict-rs's configuration agree with Warden's?

pict-rs reads a TOML file, then `PICTRS__A__B=v` variables over it. Its keys
moved between 0.4 and 0.5 (robinst/pict-rs releases/0.5.0.md:194-270:
`[media] max_width` became `[media.image] max_width`, `[media.gif]` became
`[media.animation]`, `[media] enable_silent_video` became `[media.video] enable`,
`[media] format` became `[media.image] format`), so the layout is recognised
first and each check reads the keys of that layout. `external_validation`
exists from pict-rs 0.4.3 (releases/0.4.3.md) and its timeout setting from
0.4.4 (releases/0.4.4.md:27-31); every `max_file_size` is in MiB
(`max_file_size * MEGABYTES`, `MEGABYTES = 1024 * 1024`: 31049d3 = v0.5.16
src/lib.rs:92, :208; e10cb14 = v0.4.1 src/lib.rs:79, :152).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from warden.config import Settings
from warden.jobs.findings import INFO, OK, PROBLEM, Finding

MEBIBYTE = 1024 * 1024
#: pict-rs's default `media.max_file_size`, MiB (31049d3 src/config/defaults.rs:267;
#: e10cb14 src/config/defaults.rs:167)
DEFAULT_MAX_FILE_SIZE = 40
#: pict-rs's default `media.external_validation_timeout`, s (31049d3
#: src/config/defaults.rs:266; 0.4.3 has no setting: its client waits 30 s,
#: e10cb14 src/lib.rs:1105)
DEFAULT_HOOK_TIMEOUT = 30.0
#: Lemmy's wait for `/image/download` and `?proxy=` fetches: REQWEST_TIMEOUT, 10 s
#: (LemmyNet/lemmy 0.19.3 crates/utils/src/lib.rs:24, used at
#: crates/api_common/src/request.rs:137; 0.19.20 crates/utils/src/lib.rs:31;
#: 1.0 main crates/utils/src/lib.rs:22, used at crates/api/api_utils/src/request.rs:493)
LEMMY_FETCH_WAIT = 10.0
#: Lemmy's wait for an upload: 0.19 `pictrs.upload_timeout` (default 30: 0.19.3
#: crates/utils/src/settings/structs.rs:93-95, used at crates/routes/src/images.rs:110),
#: 1.0 `image_upload_timeout_seconds` (default 30: main
#: migrations/2026-03-03-211442-0000_move_config_pictrs_to_db/up.sql:11, used at
#: crates/routes/src/images/upload.rs:231-233)
LEMMY_UPLOAD_WAIT = 30.0

#: keys only pict-rs 0.4 reads (releases/0.5.0.md:194-270, :515-518)
_ONLY_04 = (
    "media.max_width",
    "media.max_height",
    "media.max_area",
    "media.max_frame_count",
    "media.format",
    "media.gif",
    "media.enable_silent_video",
    "media.enable_full_video",
    "media.video_codec",
    "server.client_pool_size",
)
_ONLY_05 = ("media.image", "media.animation", "media.video", "media.retention")


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


def get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _env(key: str) -> str:
    return "PICTRS__" + key.upper().replace(".", "__")


def layout(config: Mapping[str, Any]) -> str:
    """`0.4` when only 0.4's keys are there, else `0.5` (what current pict-rs reads)."""
    old = any(get(config, k) is not None for k in _ONLY_04)
    new = any(get(config, k) is not None for k in _ONLY_05)
    return "0.4" if old and not new else "0.5"


def check_pictrs(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    """Every pict-rs check, for the layout the configuration is written in."""
    version = layout(config)
    out = [
        Finding(
            "pict-rs version",
            INFO,
            f"settings in pict-rs {version} layout"
            + (
                "; the hook needs 0.4.3+, its timeout setting 0.4.4+ (0.4.3 waits 30 s)"
                if version == "0.4"
                else ""
            ),
        )
    ]
    out.append(_hook(config, settings))
    out.append(_api_key(config, settings))
    out.extend(_deadlines(config, settings))
    out.extend(_limits(config, settings, version))
    out.append(_video(config, version))
    out.append(_jxl(config, version))
    return out


def _hook(config: Mapping[str, Any], settings: Settings) -> Finding:
    hook = get(config, "media.external_validation")
    name = "pict-rs validation hook"
    if not hook:
        return Finding(
            name,
            PROBLEM,
            "media.external_validation is not set: pict-rs stores images Warden never saw",
            "set PICTRS__MEDIA__EXTERNAL_VALIDATION=http://<warden>:"
            f"{settings.server.port}/pictrs/validate (pict-rs.toml: [media] "
            "external_validation; pict-rs 0.4.3 or later)",
        )
    if "/pictrs/validate" not in str(hook):
        return Finding(
            name,
            PROBLEM,
            f"media.external_validation points at {hook}, not at Warden's /pictrs/validate",
            "point it at http://<warden>:8790/pictrs/validate",
        )
    parts = urlsplit(str(hook))
    carries = parts.password is not None or "secret=" in parts.query
    if settings.server.pictrs_secret is not None and not carries:
        return Finding(
            name,
            PROBLEM,
            "server.pictrs_secret is set but the hook URL carries no secret: every "
            "image will be refused",
            "pict-rs 0.5: put it in the URL's user info, http://pictrs:<server.pictrs_secret>@"
            "<warden>:8790/pictrs/validate (sent as an Authorization header, never in a "
            "request line); pict-rs 0.4: append ?secret=<server.pictrs_secret>",
        )
    return Finding(name, OK, f"pict-rs asks {_without_secrets(parts)}")


def _without_secrets(parts: SplitResult) -> str:
    """The hook URL as it may be shown: the password and ?secret= values masked."""
    query = re.sub(r"(?i)(\bsecret=)[^&]*", r"\1[redacted]", parts.query)
    if parts.password is None:
        return urlunsplit(parts._replace(query=query))
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:[redacted]@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _api_key(config: Mapping[str, Any], settings: Settings) -> Finding:
    api_key = get(config, "server.api_key")
    mine = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else None
    name = "pict-rs API key"
    if not api_key:
        return Finding(
            name,
            PROBLEM,
            "server.api_key is not set: the internal API (purge) is closed to everyone",
            "set PICTRS__SERVER__API_KEY and the same value in Warden's pictrs.api_key",
        )
    if mine is None:
        return Finding(
            name,
            PROBLEM,
            "Warden's pictrs.api_key is not set: `warden purge` cannot call pict-rs",
            "set WARDEN_PICTRS__API_KEY to pict-rs's server.api_key",
        )
    if str(api_key) != mine:
        return Finding(
            name, PROBLEM, "pict-rs's server.api_key differs from Warden's pictrs.api_key"
        )
    return Finding(name, OK, "set, and Warden has the same")


def _deadlines(config: Mapping[str, Any], settings: Settings) -> list[Finding]:
    """Each source's deadline must end before pict-rs stops waiting for the hook and
    before Lemmy stops waiting for pict-rs; else slow scans fail without Warden's
    reason, and an accept that comes too late still stores the file."""
    configured = get(config, "media.external_validation_timeout")
    hook = float(configured) if configured is not None else DEFAULT_HOOK_TIMEOUT
    server = settings.server
    out: list[Finding] = []
    for source, key, lemmy_wait, what in (
        ("upload", "deadline_upload_ms", LEMMY_UPLOAD_WAIT, "an upload"),
        ("remote", "deadline_remote_ms", LEMMY_FETCH_WAIT, "a remote fetch"),
        ("ingest", "deadline_ingest_ms", LEMMY_FETCH_WAIT, "an unattributed ingest"),
    ):
        ours = server.hook_deadline_s(source)
        limit = min(hook, lemmy_wait)
        if ours >= limit:
            out.append(
                Finding(
                    f"{source} deadline",
                    PROBLEM,
                    f"Warden may take {ours:g} s on {what}; pict-rs waits "
                    f"{hook:g} s (media.external_validation_timeout) and Lemmy "
                    f"{lemmy_wait:g} s",
                    f"set server.{key} below {int(limit * 1000)} (with a margin for "
                    "pict-rs's own work)",
                )
            )
        else:
            out.append(Finding(f"{source} deadline", OK, f"{ours:g} s < {limit:g} s"))
    if configured is None and get(config, "client.timeout") is not None:
        out.append(
            Finding(
                "hook timeout",
                INFO,
                "client.timeout does not bound the hook in pict-rs 0.5 (its client has no "
                f"timeout); media.external_validation_timeout does (default {hook:g} s)",
            )
        )
    return out


def _limits(config: Mapping[str, Any], settings: Settings, version: str) -> list[Finding]:
    out: list[Finding] = []
    media = settings.media
    size = get(config, "media.max_file_size")
    size_mib = float(size) if size is not None else DEFAULT_MAX_FILE_SIZE
    if size_mib * MEBIBYTE > media.max_bytes:
        out.append(
            Finding(
                "file size limit",
                PROBLEM,
                f"pict-rs accepts {size_mib:g} MiB ({int(size_mib * MEBIBYTE):,} bytes), "
                f"Warden refuses above {media.max_bytes:,} bytes: users upload, wait, then "
                "get Warden's refusal",
                f"set PICTRS__MEDIA__MAX_FILE_SIZE={media.max_bytes // MEBIBYTE} "
                "(MiB; or raise media.max_bytes)",
            )
        )
    else:
        out.append(Finding("file size limit", OK, f"pict-rs {size_mib:g} MiB <= Warden's"))
    if version == "0.4":
        keys = (
            ("media.max_width", media.max_side, "max_side"),
            ("media.max_height", media.max_side, "max_side"),
            ("media.max_area", media.max_pixels, "max_pixels"),
            ("media.gif.max_frame_count", media.max_frames, "max_frames"),
        )
    else:
        keys = (
            ("media.image.max_width", media.max_side, "max_side"),
            ("media.image.max_height", media.max_side, "max_side"),
            ("media.image.max_area", media.max_pixels, "max_pixels"),
            ("media.animation.max_frame_count", media.max_frames, "max_frames"),
        )
    for key, ours, name in keys:
        theirs = get(config, key)
        if theirs is not None and int(theirs) > ours:
            out.append(
                Finding(
                    key,
                    PROBLEM,
                    f"pict-rs allows {int(theirs):,}, Warden refuses above {ours:,} ({name})",
                    f"set {_env(key)}={ours}",
                )
            )
    return out


def _video(config: Mapping[str, Any], version: str) -> Finding:
    """Warden cannot scan video. pict-rs 0.5 accepts it unless `[media.video] enable`
    is false (default true: 31049d3 src/config/defaults.rs:335); 0.4 unless
    `[media] enable_silent_video` is false, and 0.4 turns GIFs past `[media.gif]`'s
    bounds into video (e10cb14 pict-rs.toml:162-168, :220-251)."""
    key = "media.enable_silent_video" if version == "0.4" else "media.video.enable"
    value = get(config, key)
    if value is not None and str(value).lower() in ("false", "0"):
        return Finding("video", OK, f"{key} = false")
    return Finding(
        "video",
        PROBLEM,
        "pict-rs accepts video; Warden refuses video (it cannot scan it), so every video "
        "upload fails at the hook"
        + ("; 0.4 also turns larger GIFs into video" if version == "0.4" else ""),
        f"set {_env(key)}=false",
    )


def _jxl(config: Mapping[str, Any], version: str) -> Finding:
    """pict-rs stores JPEG XL as uploaded unless a format is prescribed (31049d3
    src/formats/image.rs:40-55), so the hook sees image/jxl."""
    from warden.media.decode import jxl_decoder

    key = "media.format" if version == "0.4" else "media.image.format"
    prescribed = get(config, key)
    if jxl_decoder():
        return Finding("JPEG XL", OK, "Warden decodes JPEG XL (pillow-jxl-plugin)")
    if prescribed is not None and str(prescribed).lower() != "jxl":
        return Finding("JPEG XL", OK, f"pict-rs converts still images to {prescribed}")
    return Finding(
        "JPEG XL",
        PROBLEM,
        "pict-rs stores JPEG XL as uploaded and Warden has no JPEG XL decoder here, so "
        "every JPEG XL upload is refused",
        f"install pillow-jxl-plugin, or set {_env(key)}=webp",
    )
