"""The one settings object: a TOML file, overridden by `WARDEN_*` environment.

Longer than ~400 lines on purpose: ONE settings object (STYLE.md), so every
section is here, where `warden config show` and docs/configuration.md read it.

Every field is typed, defaulted and described; `warden config show` prints the
effective values and the docs test checks every field has a description.
Nested sections are reached from the environment with a double underscore:
`WARDEN_SERVER__PORT=9000`, `WARDEN_MEDIA__MAX_BYTES=1000000`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from warden.domain.policy import FailMode, LabelPolicy
from warden.domain.scanners import RunOn, ScannerFailMode

if TYPE_CHECKING:
    from warden.membership.invites import InvitePolicy

#: Labels of NudeNet's 320n model that refuse by default: exposed genitalia,
#: breasts, buttocks and anus. Faces and covered labels never decide anything
#: unless an admin says so.
DEFAULT_REJECT_LABELS = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


class LabelThreshold(BaseModel):
    """Score bands for one label."""

    reject: float | None = Field(
        None, ge=0, le=1, description="Score at or above which media is refused."
    )
    review: float | None = Field(
        None, ge=0, le=1, description="Score at or above which media is queued for review."
    )


def _default_labels() -> dict[str, LabelThreshold]:
    return {label: LabelThreshold(reject=0.5, review=0.3) for label in DEFAULT_REJECT_LABELS}


class MediaSettings(BaseModel):
    """Limits on every decode: bytes, pixels, frames and time."""

    max_bytes: int = Field(40 * 1024 * 1024, gt=0, description="Largest file accepted, in bytes.")
    max_pixels: int = Field(
        100_000_000,
        gt=0,
        description="Largest width x height, read from the header before decoding.",
    )
    max_side: int = Field(30_000, gt=0, description="Largest width or height in pixels.")
    max_frames: int = Field(2_000, gt=0, description="Most frames an animation may have.")
    sample_frames: int = Field(
        8,
        ge=1,
        le=64,
        description="Frames scanned per animation: the first and evenly spaced ones.",
    )
    decode_timeout_s: float = Field(
        5.0, gt=0, description="Wall-clock limit for decoding one file, in seconds."
    )
    scan_side: int = Field(
        320,
        ge=64,
        description="Frames are decoded (JPEG draft mode) or reduced to about this shortest side; the model sees 320 px and PDQ 64 px, so more is wasted work.",
    )
    max_scans: int = Field(
        100,
        gt=0,
        description="Most scans a (progressive) JPEG may have: each is a pass over the whole image, so repeated scans are a CPU bomb (too_many_scans).",
    )
    max_scan_pixels: int = Field(
        2_000_000_000,
        gt=0,
        description="Most scans x width x height of a JPEG, read before decoding: the decoding work itself (20 scans of 100 MP, under a second); more is refused too_many_scans.",
    )
    max_decoded_pixels: int = Field(
        1_000_000_000,
        gt=0,
        description="Most pixels decoded across all frames and pages of one file (an animation decodes every frame up to the last one sampled).",
    )
    isolation: Literal["process", "thread"] = Field(
        "process",
        description="process decodes in worker processes with memory, CPU and wall-clock limits, killed and replaced at the deadline; thread decodes in the service itself (no limit but the deadline between frames: trusted input only).",
    )
    decoder_memory_mb: int = Field(
        768,
        ge=64,
        description="Address space each decoder process may add after warming up (RLIMIT_AS); an image that needs more is refused too_many_pixels.",
    )


class ModelSettings(BaseModel):
    """The bundled NudeNet detector and how it runs."""

    calibration_dir: Path | None = Field(
        None,
        description="Folder of ordinary images used to calibrate the int8 copy; default: the ranges shipped for the bundled model (synthetic images for another model).",
    )
    path: Path | None = Field(
        None,
        description="ONNX model file; default: 320n.onnx inside the installed nudenet package.",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in order of preference (e.g. CUDAExecutionProvider).",
    )
    threads: int = Field(
        0, ge=0, description="Threads for one model call; 0 lets onnxruntime use every core."
    )
    precision: Literal["float", "int8"] = Field(
        "float",
        description="float runs the model as shipped; int8 runs a quantised copy made on first use (about 1.7x faster per model call; scores within 0.05 of float on held-out ordinary photos, but one wallpaper in 370 files drifts by up to 0.16, so float stays the default).",
    )
    batch_size: int = Field(8, ge=1, le=256, description="Most images per model call.")
    min_score: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Detections below this score are ignored (NudeNet's own cut-off).",
    )


class PolicySettings(BaseModel):
    """How scores become decisions, and what happens when none can be reached."""

    labels: dict[str, LabelThreshold] = Field(
        default_factory=_default_labels, description="Per-label reject/review thresholds."
    )
    fail_mode_upload: FailMode = Field(
        FailMode.CLOSED,
        description="Answer for local uploads when the scanner cannot decide: closed refuses, open accepts (and logs it).",
    )
    fail_mode_remote: FailMode = Field(
        FailMode.CLOSED, description="The same for remote media fetched by pict-rs."
    )
    second_look: bool = Field(
        True,
        description="Before one label alone refuses media, look again (a tighter crop around its box, a second scale, and for exposed-body labels the colours in the box): a hit no second view supports at the reject threshold, or an exposed-body box in colour with almost no skin tones, goes to review instead.",
    )
    second_look_reviews: bool = Field(
        True,
        description="With second_look on, also look again at a review that rests on one label alone (nothing rejects, no other label fires): when neither the tighter crop nor the second scale reaches the review threshold, the media is accepted and the decision records why (label_cleared). A first-view reject is never accepted.",
    )

    def label_policy(self) -> LabelPolicy:
        return LabelPolicy.from_thresholds(
            {k: (v.reject, v.review) for k, v in self.labels.items()},
            second_look=self.second_look,
            second_look_reviews=self.second_look_reviews,
        )


class ServerSettings(BaseModel):
    """The HTTP service (`warden serve`)."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8790, gt=0, lt=65536, description="Port to listen on.")
    deadline_ms: int = Field(
        25_000,
        gt=0,
        description="Longest a scan through /api/v1/scan may take before the failure mode answers (the validation hook has its own deadlines per source, below).",
    )
    deadline_upload_ms: int = Field(
        25_000,
        gt=0,
        description="Longest the validation hook may take for a local upload before the failure mode answers: below Lemmy's 30 s upload wait (0.19 pictrs.upload_timeout, 1.0 image_upload_timeout_seconds) and pict-rs's media.external_validation_timeout (30 s).",
    )
    deadline_remote_ms: int = Field(
        5_000,
        gt=0,
        description="The same for a remote image pict-rs fetches for Lemmy (/image/download, ?proxy=): Lemmy waits only 10 s for the whole fetch, pict-rs's download included.",
    )
    deadline_ingest_ms: int = Field(
        5_000,
        gt=0,
        description="The same when the ingest proxy cannot tell uploads from remote fetches (both in flight, or Lemmy not pointed at /pictrs-proxy): the shorter wait is the safe one.",
    )
    batch_window_ms: float = Field(
        4.0, ge=0, description="How long a scan waits for others to share one model call."
    )
    refusal_pace_ms: int = Field(
        500,
        ge=0,
        description="Media refused for its bytes (a decoding refusal: corrupt, unsupported, too many pixels, scans or frames, decode timeout) is answered no sooner than this after its scan began, its decision row written first; at most half the deadline. A tarpit: a client that sends its next bomb when the last is answered gets at most (its connections / this) per second, and ordinary uploads are never delayed. 0 turns it off.",
    )
    scan_workers: int = Field(
        2,
        ge=1,
        description="Decoder processes (and threads waiting on them) that decode and hash media.",
    )
    pictrs_secret: SecretStr | None = Field(
        None,
        description="If set, /pictrs/validate requires this secret: as the HTTP Basic password (pict-rs 0.5 sends it when external_validation = http://warden:<secret>@host:8790/pictrs/validate), an X-Warden-Secret header, or ?secret= (pict-rs 0.4; redacted from Warden's access log).",
    )
    pictrs_allow_from: list[str] = Field(
        default_factory=list,
        description="If set, /pictrs/validate only answers these client addresses or networks (pict-rs's).",
    )
    proxy_allow_from: list[str] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Client addresses or networks of the Lemmy backends that may use the ingest proxy /pictrs-proxy (Lemmy's pictrs.url); empty refuses everyone. Loopback by default: list Lemmy's container or host address when it runs elsewhere.",
    )

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies in front of Warden whose X-Forwarded-For is believed (the rightmost address not in this list is the client); empty: the TCP peer is the client. Never list Lemmy or pict-rs: Lemmy forwards the uploader's address in that header.",
    )
    public_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="The same as trusted_proxies for the public listener (public_port): the nginx in front of /invites. Kept apart because nginx and Lemmy often share an address, and Lemmy's X-Forwarded-For must never be believed on the main listener.",
    )
    public_host: str = Field(
        "127.0.0.1",
        description="Address of the public listener (the /invites pages only), when public_port is set.",
    )
    public_port: int | None = Field(
        None,
        gt=0,
        lt=65536,
        description="If set, the public pages (/invites) are served only on public_host:public_port, a listener without the hook, the proxy, /authz or the API; nginx proxies /invites there.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest a request body may take to arrive, from the end of its headers; slower bodies get 408 (on /pictrs/validate with a decision row).",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest a connection may take to send a request's headers before it is closed.",
    )
    keepalive_timeout_s: float = Field(
        5.0, gt=0, description="How long an idle keep-alive connection is kept open."
    )
    max_connections: int = Field(
        4096,
        ge=8,
        description="Open connections (per listener) above which new requests get 503; lowered at start to stay below the open-files limit, which is raised to its hard limit.",
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest request line and headers accepted, in bytes."
    )

    def hook_deadline_s(self, source: str) -> float:
        """The validation hook's deadline for media from `source` (upload, remote, ingest)."""
        by_source = {
            "upload": self.deadline_upload_ms,
            "remote": self.deadline_remote_ms,
            "ingest": self.deadline_ingest_ms,
        }
        return by_source.get(source, self.deadline_ingest_ms) / 1000

    @field_validator(
        "pictrs_allow_from", "proxy_allow_from", "trusted_proxies", "public_trusted_proxies"
    )
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Refuse a typo at start-up rather than answering 403 to everyone later."""
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or network") from exc
        return value


class DatabaseSettings(BaseModel):
    """Where decisions, tokens and banks live."""

    url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file warden.db in the data folder."
    )


class EvidenceSettings(BaseModel):
    """Preservation of refused media for the authorities."""

    enabled: bool = Field(
        True, description="Keep media refused for a label or hash match, encrypted."
    )
    key: SecretStr | None = Field(
        None,
        description="32-byte key, base64 (urlsafe); `warden evidence keygen` makes one. Required when enabled, except that an embedded default is generated into the data folder on first run.",
    )
    retention_days: int = Field(
        365, ge=1, description="Days evidence is kept before `warden evidence prune` deletes it."
    )


class LemmySettings(BaseModel):
    """The Lemmy instance Warden guards (identity, user look-ups)."""

    url: str = Field(
        "http://127.0.0.1:8536", description="Lemmy's own address, as Warden reaches it."
    )
    api: Literal["auto", "v3", "v4"] = Field(
        "auto",
        description="API version: v3 (Lemmy 0.19.x), v4 (Lemmy 1.0), or auto (asks Lemmy on first use).",
    )
    timeout_s: float = Field(3.0, gt=0, description="Longest wait for one Lemmy API call.")
    identity_ttl_s: float = Field(
        30.0, ge=0, description="How long a token's user facts are cached (keyed by its SHA-256)."
    )
    bot_token: SecretStr | None = Field(
        None, description="Token of an admin or bot account, for `warden rules check`."
    )


class PictrsSettings(BaseModel):
    """pict-rs's internal API, for purges."""

    url: str = Field(
        "http://127.0.0.1:8080", description="pict-rs's own address, as Warden reaches it."
    )
    api_key: SecretStr | None = Field(
        None, description="pict-rs `server.api_key` (sent as X-Api-Token); required for purges."
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for one pict-rs internal API call."
    )


class FederatedSettings(BaseModel):
    """Federated media: the purge of cached remote images."""

    lemmy_database_url: str | None = Field(
        None,
        description="Read-only URL of Lemmy's PostgreSQL database (local_image and content tables).",
    )
    local_hosts: list[str] = Field(
        default_factory=list,
        description="Host names under which this instance serves its images, /pictrs/image/ (0.19) or /api/v4/image/ (1.0) URLs (e.g. lemmy.example.org).",
    )
    purge_rate: float = Field(
        10.0, ge=0, description="Most pict-rs purges per second (0 = unlimited)."
    )
    remote_media: Literal["block", "scan", "allow"] = Field(
        "block",
        description="Remote images Lemmy asks pict-rs to cache: block (never fetched; Lemmy links the origin), scan (through the full gate), allow (scanned, but accepted when no decision can be reached). Needs Lemmy's pictrs.url pointed at http://<warden>:8790/pictrs-proxy/ (trailing slash).",
    )


class BankSettings(BaseModel):
    """Hash banks: how the service follows them, and where `warden flag` puts hashes."""

    refresh_s: float = Field(
        5.0,
        gt=0,
        description="How often `warden serve` picks up bank changes made by the CLI or another replica.",
    )
    compact_after: int = Field(
        20_000,
        ge=1,
        description="Changes since the last rebuild after which the in-memory index is rebuilt in the background.",
    )
    flag_bank: str = Field(
        "local-confirmed",
        description="PDQ bank `warden flag` adds to (created on first use, action reject); SHA-256s go to '<name>-sha256'.",
    )
    allow_bank: str = Field(
        "local-allow",
        description="PDQ bank `warden unflag` moves hashes to (created on first use, action allow); SHA-256s go to '<name>-sha256'.",
    )
    rematch_days: int = Field(
        30, ge=0, description="How many days of the decisions log `warden flag` matches again."
    )
    robust_matching: bool = Field(
        True,
        description="Also match Warden's own hashes of each scan (borders, canvases and caption bars trimmed; normalised for small copies) and bank them for flagged files in '<flag_bank>-warden'; plain PDQ is always matched.",
    )
    keypoints: bool = Field(
        True,
        description="When no hash matches, look the scan's first frame up by ORB keypoints among the pictures Warden flagged itself (their features are stored when flagged, never the picture), so crops up to 10 % and small rotations of them are refused like their bank; costs nothing while no features are held (docs/banks.md).",
    )


class FeedSettings(BaseModel):
    """Hash feeds between instances (docs/feeds.md): publishing banks, following others'."""

    enabled: bool = Field(
        True,
        description="Serve published feeds and run subscriptions (nothing is published or followed until an admin says so).",
    )
    key_file: Path | None = Field(
        None,
        description="This instance's Ed25519 feed key (PEM, created 0600 on first use); default <data_dir>/feed-key.pem.",
    )
    poll_interval_s: float = Field(
        30.0, gt=0, description="How often each subscribed feed is pulled from its cursor."
    )
    publish_check_s: float = Field(
        1.0,
        gt=0,
        description="How often published banks are checked for changes to append and push.",
    )
    batch_max_entries: int = Field(
        5_000, ge=1, le=100_000, description="Most entries in one batch, served or accepted."
    )
    max_batch_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest batch accepted (pulled or pushed), in bytes; a larger one is refused unread.",
    )
    max_batches_per_sync: int = Field(
        100,
        ge=1,
        description="Most batches one pull of one feed fetches before it waits for the next poll.",
    )
    timeout_s: float = Field(10.0, gt=0, description="Longest wait for one feed request.")
    max_batch_age_s: float = Field(
        3600.0,
        gt=0,
        description="A batch issued longer ago than this is refused (an old 'nothing new' replayed).",
    )
    max_clock_skew_s: float = Field(
        300.0, ge=0, description="How far in the future a batch's issue time may lie."
    )
    inbox_per_minute: int = Field(
        120,
        ge=1,
        description="Most pushed batches accepted per subscription per minute (then 429).",
    )


class StrikeStepSettings(BaseModel):
    """What an inviter's Nth strike does."""

    at: int = Field(ge=1, description="The strike count at which this step fires.")
    action: Literal["suspend", "revoke"] = Field(
        description="suspend: no new invites for `days`; revoke: invite rights revoked and the inviter queued for admin review."
    )
    days: int = Field(0, ge=0, description="Length of a suspension, in days.")


def _default_eligibility() -> list[str | dict[str, object]]:
    return ["account_age >= 30d", "comments >= 10"]


class InviteSettings(BaseModel):
    """Invite-only sign-up: the ledger, the registration worker and accountability."""

    enabled: bool = Field(
        False,
        description="Run the invite system: the /invites page, the application worker (Lemmy 0.19) or native invite metering (1.0), and the ban watcher.",
    )
    per_period: int = Field(
        3, ge=0, description="Invites granted to each eligible user per period."
    )
    period: Literal["month", "week"] = Field(
        "month", description="The refill period (UTC calendar months or ISO weeks)."
    )
    carry_cap: int = Field(
        6,
        ge=0,
        description="Unused invites carry over, but a refill never lifts a balance above this.",
    )
    expiry_days: int = Field(14, ge=1, description="Days before an unused code expires.")
    max_uses: int = Field(1, ge=1, description="Sign-ups one code allows (1 = single-use).")
    eligibility: list[str | dict[str, object]] = Field(
        default_factory=_default_eligibility,
        description="Who receives invites: conditions in the rules language, all of which must hold (a table {any = [...]} nests); empty: every account not banned.",
    )
    on_invalid_code: Literal["deny", "leave"] = Field(
        "leave",
        description="Lemmy 0.19 applications without a valid code: deny them with the reason, or leave them for a human.",
    )
    deny_reason: str = Field(
        "A valid invite code is required to join this instance",
        description="The reason given to an applicant denied for a missing or bad code: the same for every case (unknown, used, expired, revoked, several codes), so it does not help guessing; the specific problem stays in Warden's invite audit log.",
    )
    poll_s: float = Field(
        30.0, gt=0, description="How often the worker reads applications and the modlog."
    )
    strikes: list[StrikeStepSettings] = Field(
        default_factory=lambda: [
            StrikeStepSettings(at=1, action="suspend", days=30),
            StrikeStepSettings(at=3, action="revoke"),
        ],
        description="What strikes do: one strike per banned invitee.",
    )
    session_ttl_s: float = Field(
        3600.0,
        gt=0,
        description="How long an /invites sign-in lasts (the Lemmy token is kept in memory only).",
    )
    cookie_secure: bool = Field(
        True,
        description="Mark the /invites session cookie Secure (HTTPS only); off only for local testing.",
    )
    site_url: str | None = Field(
        None,
        description="Lemmy's public address as users know it (https://lemmy.example), named on /invites and in invite links; unset, the page names no address. Never lemmy.url, which is Warden's internal way in.",
    )
    login_failures_per_account: int = Field(
        5,
        ge=1,
        description="Failed /invites sign-ins one account may have within login_window_s before Warden refuses its sign-ins without asking Lemmy (in memory, per process).",
    )
    login_failures_per_address: int = Field(
        20,
        ge=1,
        description="The same per client address (the TCP peer, or the client behind server.trusted_proxies); that address is also what Warden forwards to Lemmy, whose own login limit is per address.",
    )
    login_window_s: float = Field(
        900.0, gt=0, description="The window in which failed /invites sign-ins are counted."
    )

    @field_validator("eligibility")
    @classmethod
    def _eligibility_parses(
        cls, value: list[str | dict[str, object]]
    ) -> list[str | dict[str, object]]:
        from warden.errors import RuleSyntaxError
        from warden.membership.requirements import parse_tree

        try:
            if value:  # empty: every account in good standing is eligible
                parse_tree({"all": value}, where="invites.eligibility")
        except RuleSyntaxError as exc:
            raise ValueError(f"invites.eligibility: {exc}") from exc
        return value

    def policy(self) -> InvitePolicy:
        """The ledger's rules (membership/invites.py) from these settings."""
        from datetime import timedelta

        from warden.membership.invites import InvitePolicy, Period, parse_strikes
        from warden.membership.requirements import parse_tree

        return InvitePolicy(
            per_period=self.per_period,
            period=Period(self.period),
            carry_cap=self.carry_cap,
            expiry=timedelta(days=self.expiry_days),
            max_uses=self.max_uses,
            eligibility=parse_tree({"all": self.eligibility}, where="invites.eligibility")
            if self.eligibility
            else None,
            strikes=parse_strikes([s.model_dump() for s in self.strikes]),
        )


class ConsoleSettings(BaseModel):
    """The admins' incident console at /console (main listener only)."""

    enabled: bool = Field(
        True,
        description="Serve /console on the main listener (never on the public one); admins sign in with their Lemmy account.",
    )
    moderators: bool = Field(
        False,
        description="Let community moderators sign in too: they see only the review queue, and only media placed in communities they moderate.",
    )
    session_ttl_s: float = Field(
        8 * 3600.0,
        gt=0,
        description="How long a console sign-in lasts. Sessions are kept in Warden's database (only a hash of the cookie), so they survive a restart; the Lemmy token is never kept.",
    )
    cookie_secure: bool = Field(
        True,
        description="Mark the console's session cookie Secure (HTTPS only); off only when the console is reached over an SSH tunnel to plain http on loopback.",
    )
    hours: int = Field(
        3, ge=1, le=48, description="How many hours of decisions the Now page charts."
    )
    queue_size: int = Field(
        50, ge=1, le=500, description="Most review decisions the queue shows on one page."
    )
    pixel_blocks: int = Field(
        12,
        ge=4,
        le=64,
        description="Blocks across a queue thumbnail: the picture is shrunk to this many pixels wide and blown up again, so nothing can be recognised.",
    )
    exports_dir: Path | None = Field(
        None,
        description="Where evidence report packages are written (default: data_dir/exports).",
    )
    placement_s: float = Field(
        60.0,
        ge=0,
        description="How often, at most, opening the review queue looks up where its media was posted (the Lemmy posts, and so communities, using each alias: federated.lemmy_database_url when set, else Lemmy's search API with lemmy.bot_token); moderators see only reviews placed in communities they moderate.",
    )
    placement_batch: int = Field(
        25,
        ge=1,
        le=500,
        description="Most aliases one placement look-up asks Lemmy about (the least recently checked first); Lemmy's search API is rate-limited, its database is not.",
    )


class RulesSettings(BaseModel):
    """Account requirements and the uploads switch, enforced at /authz."""

    file: Path | None = Field(
        None,
        description="TOML rules file (uploads switch, [rules.<activity>] tables); re-read when it changes.",
    )
    uploads: Literal["on", "off", "admins", "moderators"] | None = Field(
        None, description="Overrides the rules file's uploads switch when set."
    )
    fail_mode: FailMode = Field(
        FailMode.CLOSED,
        description="Answer for mapped activities when Lemmy cannot say who is asking: closed refuses, open lets through.",
    )
    reload_interval_s: float = Field(
        2.0, ge=0, description="How often the rules file's modification time is checked."
    )


class ScannerSettings(BaseModel):
    """One external scanner (`[[scanners.external]]`): which service, when, and what its failure means."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$",
        description="A short name for the decisions log and alerts (e.g. photodna).",
    )
    kind: Literal["http", "fedi_safety", "photodna", "hive"] = Field(
        description="http: a generic JSON scanner (mapping below); fedi_safety: db0's pictrs-safety API in front of a fedi-safety worker; photodna: Microsoft PhotoDNA Cloud Service Match; hive: Hive's visual moderation (v2 sync task)."
    )
    url: str = Field(
        description="The endpoint Warden POSTs the media to (photodna: https://api.microsoftmoderator.com/photodna/v1.0/Match; hive: https://api.thehive.ai/api/v2/task/sync; fedi_safety: pictrs-safety's base URL, e.g. http://127.0.0.1:14051)."
    )
    secret: SecretStr | None = Field(
        None,
        description="The API key or token (photodna: Ocp-Apim-Subscription-Key; hive: the project's API key; http: the value of secret_header; fedi_safety: the pictrs id from KNOWN_PICTRS_IDS, default IPADDR). Never logged.",
    )
    secret_file: Path | None = Field(
        None,
        description="A file holding the secret instead (read at start-up, surrounding whitespace stripped); wins over secret.",
    )
    secret_header: str = Field(
        "Authorization",
        description="http only: the header that carries the secret (its value is sent as is: include any 'Bearer ').",
    )
    send: Literal["bytes", "url"] = Field(
        "bytes",
        description="http only: bytes POSTs the media itself; url POSTs JSON {url, sha256, content_type, size, expires_at} where url is a signed one-time link on Warden's own listener (scanners.media_url_base) that serves the bytes once, until the scan ends or timeout_s passes.",
    )
    run_on: RunOn = Field(
        RunOn.ALL,
        description="Which media it is asked about: all, upload (local uploads) or remote (media fetched for federation).",
    )
    only_review: bool = Field(
        False,
        description="Ask it only about media the model and banks sent to review (a paid or rate-limited service as a tie-breaker).",
    )
    min_bytes: int = Field(0, ge=0, description="Ask it only about files of at least this size.")
    timeout_s: float = Field(
        5.0,
        gt=0,
        description="Longest wait for its answer (the hook's own deadline still applies) before the failure mode answers.",
    )
    concurrency: int = Field(
        4,
        ge=1,
        description="Most requests in flight to it at once; more wait for a slot (within timeout_s).",
    )
    fail_mode: ScannerFailMode = Field(
        ScannerFailMode.CLOSED,
        description="When it gives no verdict (down, 5xx, 429, timeout, unreadable answer): closed refuses, open decides without it and records the failure, skip ignores it.",
    )
    feed_flag_bank: bool = Field(
        False,
        description="Add the hashes of media this scanner refuses to the flag bank (banks.flag_bank), so reposts are refused without asking it again.",
    )
    decision_field: str = Field(
        "decision",
        description="http only: dotted path of the verdict in the JSON answer (e.g. result.action).",
    )
    reject_values: list[str] = Field(
        default_factory=lambda: ["reject"],
        description="http only: values of decision_field that refuse (compared as lower-case strings; true counts as 'true').",
    )
    review_values: list[str] = Field(
        default_factory=lambda: ["review"],
        description="http only: values of decision_field that send to review.",
    )
    accept_values: list[str] = Field(
        default_factory=lambda: ["accept"],
        description="http only: values of decision_field that accept; any other value is an unreadable answer (the failure mode).",
    )
    labels_field: str | None = Field(
        "labels",
        description="http only: dotted path of the scanner's labels, kept raw in the decisions log (absent: none).",
    )
    reject_classes: dict[str, float] = Field(
        default_factory=lambda: {
            "yes_sexual_activity": 0.9,
            "yes_realistic_nsfw": 0.9,
            "general_nsfw": 0.9,
        },
        description="hive only: class -> score at or above which Hive's answer refuses.",
    )
    review_classes: dict[str, float] = Field(
        default_factory=lambda: {"general_nsfw": 0.5, "general_suggestive": 0.9},
        description="hive only: class -> score at or above which Hive's answer sends to review.",
    )
    enhance: bool = Field(
        False,
        description="photodna only: ask for enhanced matching (the Match operation's enhance parameter; slower).",
    )


class ScannersSettings(BaseModel):
    """External scanners asked after the model and banks; none by default (no network)."""

    external: list[ScannerSettings] = Field(
        default_factory=list,
        description="The scanners, each a [[scanners.external]] table (see docs/scanners.md); empty: none is asked and nothing is started.",
    )
    media_url_base: str | None = Field(
        None,
        description="The base URL at which scanners with send = url reach Warden's main listener (e.g. http://10.0.0.2:8790): their one-time media links are <base>/scanner-media/<token>. Required when such a scanner is configured; the scanner must reach this very process (links are signed with a per-process secret).",
    )


class AlertChannelSettings(BaseModel):
    """One place alerts go (`[[alerts.channels]]`)."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$", description="A short name for Warden's log."
    )
    kind: Literal["matrix", "webhook_json", "smtp", "signed_webhook"] = Field(
        description="matrix: a room message through a homeserver's client-server API; webhook_json: a Discord or Slack incoming webhook; smtp: an email; signed_webhook: JSON signed with HMAC-SHA256."
    )
    url: str = Field(
        "",
        description="matrix: the homeserver's base URL; webhook_json and signed_webhook: the webhook URL; smtp: unused.",
    )
    room_id: str = Field("", description="matrix only: the room to post in (!id:server).")
    secret: SecretStr | None = Field(
        None,
        description="matrix: the bot's access token; signed_webhook: the HMAC key; smtp: the password. Never logged, never in a message.",
    )
    secret_file: Path | None = Field(
        None, description="A file holding the secret instead; wins over secret."
    )
    smtp_host: str = Field("127.0.0.1", description="smtp only: the mail server.")
    smtp_port: int = Field(25, gt=0, lt=65536, description="smtp only: its port.")
    smtp_starttls: bool = Field(
        False, description="smtp only: upgrade the connection with STARTTLS before logging in."
    )
    smtp_user: str = Field("", description="smtp only: login name (empty: no login).")
    mail_from: str = Field("warden@localhost", description="smtp only: the sender address.")
    mail_to: list[str] = Field(default_factory=list, description="smtp only: the recipients.")
    events: list[str] = Field(
        default_factory=list,
        description="Events this channel gets (csam_match, refusal_spike, gate_failing_closed, evidence_failed, flag_action, ban_action, feed_quarantined); empty: all.",
    )


class AlertSettings(BaseModel):
    """Alerts when an attack starts or the gate is in trouble; none by default."""

    channels: list[AlertChannelSettings] = Field(
        default_factory=list,
        description="Where alerts go, each an [[alerts.channels]] table (see docs/alerts.md); empty: no alert is sent and nothing is started.",
    )
    repeat_after_s: float = Field(
        900.0,
        gt=0,
        description="An event with the same key (the same bank, the same failing part) is sent once per this many seconds; repeats in between are counted and summed up in the next message.",
    )
    max_per_hour: int = Field(
        30, ge=1, description="Most messages per channel per hour, whatever the events."
    )
    spike_window_s: float = Field(
        300.0, gt=0, description="Refusals are counted over this window for spike detection."
    )
    spike_baseline_s: float = Field(
        3600.0,
        gt=0,
        description="The refusal rate of this period before the window is the baseline.",
    )
    spike_factor: float = Field(
        4.0,
        gt=1,
        description="A spike is a window with this many times the refusals the baseline rate predicts.",
    )
    spike_min_refusals: int = Field(
        20, ge=1, description="Fewer refusals than this in a window are never a spike."
    )
    timeout_s: float = Field(
        10.0, gt=0, description="Longest wait for one channel to take a message."
    )


class Settings(BaseSettings):
    """Everything Warden can be told. See `warden config show`."""

    model_config = SettingsConfigDict(
        env_prefix="WARDEN_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        Path("data"), description="Folder for the SQLite database, evidence and derived models."
    )
    media: MediaSettings = Field(default_factory=MediaSettings, description="Decode limits.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Classifier.")
    policy: PolicySettings = Field(
        default_factory=PolicySettings, description="Thresholds and failure modes."
    )
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP service.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="Database.")
    evidence: EvidenceSettings = Field(
        default_factory=EvidenceSettings, description="Evidence store."
    )
    lemmy: LemmySettings = Field(default_factory=LemmySettings, description="Lemmy API client.")
    pictrs: PictrsSettings = Field(
        default_factory=PictrsSettings, description="pict-rs internal API."
    )
    federated: FederatedSettings = Field(
        default_factory=FederatedSettings, description="Federated media purge."
    )
    rules: RulesSettings = Field(
        default_factory=RulesSettings, description="Account requirements and the uploads switch."
    )
    banks: BankSettings = Field(default_factory=BankSettings, description="Hash banks.")
    feeds: FeedSettings = Field(
        default_factory=FeedSettings, description="Hash feeds between instances."
    )
    invites: InviteSettings = Field(
        default_factory=InviteSettings, description="Invite-only sign-up."
    )
    scanners: ScannersSettings = Field(
        default_factory=ScannersSettings, description="External scanners."
    )
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="Alerts.")
    console: ConsoleSettings = Field(
        default_factory=ConsoleSettings, description="The incident console (/console)."
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'warden.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(path: Path | str | None = None, **overrides: object) -> Settings:
    """Read settings from `path` (or `$WARDEN_CONFIG`), then the environment.

    A named file that does not exist is an error rather than silently ignored:
    an admin who points at a config expects it to be used.
    """
    from warden.errors import ConfigError

    chosen = path if path is not None else os.environ.get("WARDEN_CONFIG")
    if chosen is None:
        return Settings(**overrides)  # type: ignore[arg-type]
    file = Path(chosen).expanduser()
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=file)

    try:
        return FileSettings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
