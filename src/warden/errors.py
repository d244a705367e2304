"""One exception family for Warden.

Longer than ~400 lines on purpose: the whole family in one file is what the web
handler, the CLI's exit codes and docs/errors.md read, and what a reader scans.

Every refusal Warden makes maps to a stable machine code (what logs, metrics and
pict-rs/Lemmy callers see) and a human sentence (what an admin or user reads)::

    WardenError                     (status: the HTTP status when it answers a request)
    ├── ConfigError                 settings or rule files that cannot be used
    │   └── RuleFileError           bad_rules (a rules file; says where)
    ├── InputError                  input_error: something an admin or caller typed
    │   ├── RuleSyntaxError         bad_condition (a rule condition or duration)
    │   ├── HashFileError           bad_hash_file (a hash-list line; says which)
    │   ├── LabelsFileError         bad_labels_file (`warden eval --labels`)
    │   └── BadHash                 bad_hash (not a hash of that type)
    ├── NotFound                    not_found
    │   └── MediaLinkGone           media_link_gone (410: a scanner's one-time media URL, used or expired)
    ├── InviteRefused               invite_refused (and its own codes: no_invites_left, …)
    ├── BankError                   bank_error (a bank that does not exist or refuses)
    ├── FlagError                   flag_error
    ├── FeedError                   feed_error: a hash-feed batch refused (domain/feeds.py)
    │   ├── FeedMalformed           feed_malformed (not a batch: a field, a key, a hash)
    │   │   └── FeedTruncated       feed_truncated (entries missing from the range it claims)
    │   ├── FeedTooLarge            feed_too_large (bytes or entries over the caps)
    │   ├── FeedBadSignature        feed_bad_signature (quarantines a pulled feed)
    │   ├── FeedReplay              feed_replay (already applied, or older than accepted)
    │   ├── FeedRollback            feed_rollback (the publisher's head went back)
    │   ├── FeedOutOfOrder          feed_out_of_order (starts past the cursor: pull)
    │   ├── FeedStale               feed_stale (issued too long ago, or in the future)
    │   ├── FeedQuarantined         feed_quarantined (held until the admin resumes it)
    │   ├── FeedRateLimited         feed_rate_limited (pushes over the inbox cap)
    │   ├── FeedUnknown             feed_unknown (no such published feed or subscription)
    │   └── FeedUnavailable         feed_unavailable (the publisher cannot be reached)
    ├── MediaError                  the media itself is refused before any decision
    │   ├── EmptyMedia              empty_media
    │   ├── MediaTooLarge           file_too_large
    │   ├── UnsupportedFormat       unsupported_format
    │   ├── PolyglotMedia           polyglot_media
    │   ├── TruncatedMedia          truncated_media
    │   ├── CorruptMedia            corrupt_media
    │   ├── BadDimensions           bad_dimensions
    │   ├── TooManyPixels           too_many_pixels
    │   ├── TooManyFrames           too_many_frames
    │   ├── TooManyScans            too_many_scans (progressive JPEG passes)
    │   └── DecodeTimeout           decode_timeout
    ├── ScanError                   the scanner could not reach a decision
    │   ├── ModelUnavailable        model_unavailable
    │   ├── ScanTimeout             scan_timeout
    │   └── ScannerError            scanner_error: an external scanner gave no verdict
    │       ├── ScannerUnavailable  scanner_unavailable (refused connection, 5xx)
    │       ├── ScannerThrottled    scanner_throttled (429; retry_after_s)
    │       ├── ScannerTimeout      scanner_timeout
    │       ├── ScannerRefused      scanner_refused (401/403/4xx: its key or our request)
    │       └── ScannerBadAnswer    scanner_bad_answer (an answer that cannot be read)
    ├── StoreError                  the database or evidence store failed
    │   ├── EvidenceError           evidence_error
    │   └── LedgerFileError         ledger_file_error (a purge/rescan ledger file this Warden cannot use)
    ├── AuthError                   missing or bad credentials
    │   ├── Unauthorized            unauthorized (401: no usable API token)
    │   ├── Forbidden               forbidden (403: a token without the route's scope)
    │   ├── PageRefused             page_refused (a public page's refusal, shown as the page)
    │   └── SignInNeeded            console_sign_in (a /console page without a live session)
    ├── BodyTimeout                 body_timeout (a request body slower than server.body_timeout_s)
    └── UpstreamError               a service Warden depends on failed
        ├── PictrsError             pictrs_error
        │   └── HashListingUnavailable  pictrs_no_hash_listing (pict-rs 0.4.x)
        ├── LemmySchemaError        lemmy_schema_unknown (purge reads Lemmy's tables)
        ├── LemmyUnavailable        lemmy_unavailable
        │   └── LemmyRateLimited    lemmy_rate_limited (Lemmy's per-IP limit)
        ├── LemmyError              lemmy_error (an answer Warden cannot use)
        │   ├── LemmyRefused        lemmy_refused (Lemmy's own error code)
        │   └── LemmyApiMismatch    lemmy_api_mismatch (not this API version)
        └── NotifyError             notify_error (an alert channel refused or was down)

Each class carries its `code` and the HTTP `status` it answers with; the web
layer turns any of them into `{"error": code, "message": text}` in one place,
and the CLI turns them into an exit code in one place. `InputError` is also a
`ValueError`, so validators (pydantic) and older callers keep working.
"""

from __future__ import annotations


class WardenError(Exception):
    """Base of every error Warden raises on purpose."""

    code: str = "warden_error"
    status: int = 500
    exit_code: int = 1  # `warden` commands: 1 refused or failed, 2 nothing done (cli/context.py)

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(WardenError):
    """Settings (or a file they name) that cannot be used: nothing was done; the
    message names the setting to fix."""

    code = "config_error"
    status = 422
    exit_code = 2


class RuleFileError(ConfigError):
    """A rules file that cannot be used; `line` is 1-based (None when unknown)."""

    code = "bad_rules"

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class InputError(WardenError, ValueError):
    """Something typed by an admin or a caller that cannot be used; says what."""

    code = "input_error"
    status = 400
    exit_code = 2


class RuleSyntaxError(InputError):
    """A condition or duration that cannot be understood; `text` is the offending string."""

    code = "bad_condition"

    def __init__(self, text: str, problem: str) -> None:
        shown = repr(text) if len(text) <= 100 else f"{text[:100]!r}... ({len(text):,} characters)"
        super().__init__(f"{problem}: {shown}")
        self.text = text
        self.problem = problem


class HashFileError(InputError):
    """A hash-list line that cannot be read; says which line and why."""

    code = "bad_hash_file"


class LabelsFileError(InputError):
    """The `warden eval --labels` CSV cannot be used: the message says which line and why."""

    code = "bad_labels_file"


class BadHash(InputError):
    """A value that is not a hash of the type named (length, digits)."""

    code = "bad_hash"


class NotFound(WardenError):
    """Something named does not exist: a token, a decision, an evidence item, an invite account."""

    code = "not_found"
    status = 404


class MediaLinkGone(NotFound):
    """A one-time media URL handed to an external scanner that was already fetched,
    revoked (the scan is over) or is past its expiry: the bytes are served once only."""

    code = "media_link_gone"
    status = 410


class InviteRefused(WardenError):
    """An invite operation the rules refuse; the message is for the person asking,
    the code says which rule (`no_invites_left`, `invalid_invite`, …)."""

    code = "invite_refused"
    status = 403

    def __init__(self, message: str, code: str = "invite_refused") -> None:
        super().__init__(message, code=code)


class BankError(WardenError):
    """A hash bank that does not exist, or an operation its settings refuse."""

    code = "bank_error"
    status = 400


class FlagError(WardenError):
    """`warden flag` cannot flag what it was given (unknown decision, nothing to hash)."""

    code = "flag_error"
    status = 400


class FeedError(WardenError):
    """A hash-feed batch or operation refused; nothing local was changed by it."""

    code = "feed_error"
    status = 400


class FeedMalformed(FeedError, InputError):
    """Not a batch (or not a key, a feed name): also an InputError when an admin typed it."""

    code = "feed_malformed"


class FeedTruncated(FeedMalformed):
    """A batch whose entries do not run `cursor+1 .. next` without a gap: cut short, or entries taken out."""

    code = "feed_truncated"


class FeedTooLarge(FeedError):
    """A batch over `feeds.max_batch_bytes` or `feeds.batch_max_entries`: refused unread."""

    code = "feed_too_large"
    status = 413


class FeedBadSignature(FeedError):
    """A batch not signed by the publisher's pinned key, or a key whose fingerprint is not the one subscribed to; a pulled one quarantines the feed."""

    code = "feed_bad_signature"
    status = 403


class FeedReplay(FeedError):
    """A batch applied before, starting before the subscriber's cursor, or older than one already accepted."""

    code = "feed_replay"
    status = 409


class FeedRollback(FeedError):
    """The publisher's head went backwards (a restored database, or an old state replayed): the feed is quarantined, its entries kept."""

    code = "feed_rollback"
    status = 409


class FeedOutOfOrder(FeedError):
    """A pushed batch that starts past the subscriber's cursor: entries in between are missing, so a pull from the cursor runs instead."""

    code = "feed_out_of_order"
    status = 409


class FeedStale(FeedError):
    """A batch issued longer ago than `feeds.max_batch_age_s`, or in the future beyond `feeds.max_clock_skew_s`."""

    code = "feed_stale"
    status = 409


class FeedQuarantined(FeedError):
    """The feed is held until an admin runs `warden feeds resume` (also `feed_mass_retraction`: one batch retracting most of a feed)."""

    code = "feed_quarantined"
    status = 409


class FeedRateLimited(FeedError):
    """More pushes for one subscription than `feeds.inbox_per_minute` allows."""

    code = "feed_rate_limited"
    status = 429


class FeedUnknown(FeedError):
    """No published feed of that name, or no subscription to that feed and key."""

    code = "feed_unknown"
    status = 404


class FeedUnavailable(FeedError):
    """The publisher could not be reached or answered with an error: the local bank is kept, the next poll retries."""

    code = "feed_unavailable"
    status = 502


class MediaError(WardenError):
    """The media itself is refused before any decision: it cannot be decoded safely."""

    code = "media_error"
    status = 422


class EmptyMedia(MediaError):
    """The upload has no bytes."""

    code = "empty_media"


class MediaTooLarge(MediaError):
    """More bytes than `media.max_bytes`."""

    code = "file_too_large"
    status = 413


class UnsupportedFormat(MediaError):
    """Not an image format Warden decodes (SVG, HTML, PDF, archives, video, random bytes)."""

    code = "unsupported_format"


class PolyglotMedia(MediaError):
    """An image that can also be read as markup or script where a browser or parser could find it."""

    code = "polyglot_media"


class TruncatedMedia(MediaError):
    """The image data ends before the image does."""

    code = "truncated_media"


class CorruptMedia(MediaError):
    """The decoder cannot read the image data."""

    code = "corrupt_media"


class BadDimensions(MediaError):
    """A width or height of zero, or a side longer than `media.max_side`."""

    code = "bad_dimensions"


class TooManyPixels(MediaError):
    """More pixels than `media.max_pixels` (a decompression bomb)."""

    code = "too_many_pixels"


class TooManyFrames(MediaError):
    """An animation with more frames than `media.max_frames`."""

    code = "too_many_frames"


class TooManyScans(MediaError):
    """A progressive JPEG with more scans than `media.max_scans`: each scan is a
    full pass over the image, so a few hundred bytes of repeated scans cost seconds."""

    code = "too_many_scans"


class DecodeTimeout(MediaError):
    """Decoding took longer than `media.decode_timeout_s`; the worker was killed and replaced."""

    code = "decode_timeout"


class ScanError(WardenError):
    """The scanner could not reach a decision: refused unless that source is configured to fail
    open."""

    code = "scan_error"
    status = 503


class ModelUnavailable(ScanError):
    """The classifier model could not be loaded or run."""

    code = "model_unavailable"


class ScanTimeout(ScanError):
    """The scan did not finish within `server.deadline_ms`."""

    code = "scan_timeout"


class ScannerError(ScanError):
    """An external scanner (services/external_scan.py) gave no verdict; the
    scanner's failure mode decides what that means. `scanner` names it."""

    code = "scanner_error"

    def __init__(self, message: str, *, scanner: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.scanner = scanner


class ScannerUnavailable(ScannerError):
    """An external scanner refused the connection or answered with a server error (5xx)."""

    code = "scanner_unavailable"


class ScannerThrottled(ScannerError):
    """The scanner answered 429; `retry_after_s` is its Retry-After (None: not given)."""

    code = "scanner_throttled"

    def __init__(
        self, message: str, *, scanner: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, scanner=scanner)
        self.retry_after_s = retry_after_s


class ScannerTimeout(ScannerError):
    """An external scanner did not answer within its configured timeout."""

    code = "scanner_timeout"


class ScannerRefused(ScannerError):
    """A 4xx other than 429: a wrong key, or a request the vendor will not take."""

    code = "scanner_refused"


class ScannerBadAnswer(ScannerError):
    """An answer that does not say what the vendor documents it says."""

    code = "scanner_bad_answer"


class StoreError(WardenError):
    """Warden's database or evidence store failed; the operation did not happen."""

    code = "store_error"
    status = 503


class EvidenceError(StoreError):
    """Evidence could not be written or read (no such item, not an evidence file, a write failure)."""

    code = "evidence_error"


class LedgerFileError(StoreError):
    """A ledger file (purge, rescan) written by a newer Warden, or a schema step that failed."""

    code = "ledger_file_error"


class AuthError(WardenError):
    """Missing or bad credentials."""

    code = "unauthorized"
    status = 401


class Unauthorized(AuthError):
    """No usable API token; answered 401 `unauthorized` with `WWW-Authenticate: Bearer`."""

    def __init__(
        self, message: str = "a valid API token is required (Authorization: Bearer …)"
    ) -> None:
        super().__init__(message)


class Forbidden(AuthError):
    """A valid API token without the scope the route needs; answered 403 `forbidden`."""

    code = "forbidden"
    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this token lacks the '{scope}' scope; make one with "
            f"`warden tokens create NAME --scope {scope}`"
        )
        self.scope = scope


class PageRefused(AuthError):
    """A request a public page (/invites) refuses: shown as the page with the message,
    under `status` (403 cross-site, 400 an unreadable form, 404 invites off, …)."""

    code = "page_refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SignInNeeded(AuthError):
    """A /console page asked for without a live session (never signed in, signed out or
    expired): a GET is sent to the sign-in form, a POST refused 403 and nothing done."""

    code = "console_sign_in"
    status = 401


class BodyTimeout(WardenError):
    """A client sent its request body slower than `server.body_timeout_s` allows."""

    code = "body_timeout"
    status = 408


class UpstreamError(WardenError):
    """A service Warden depends on (Lemmy, pict-rs, Lemmy's database) failed or gave an answer
    Warden cannot use."""

    code = "upstream_error"
    status = 502


class PictrsError(UpstreamError):
    """pict-rs's internal API failed, refused the API key, or could not be reached."""

    code = "pictrs_error"


class HashListingUnavailable(PictrsError):
    """pict-rs has no `/internal/hashes` (0.4.x): storage cannot be listed through it."""

    code = "pictrs_no_hash_listing"


class LemmySchemaError(UpstreamError):
    """Lemmy's database has a shape the purge does not know: it refuses to guess."""

    code = "lemmy_schema_unknown"


class LemmyUnavailable(UpstreamError):
    """Lemmy could not be reached, or answered with a server error."""

    code = "lemmy_unavailable"
    status = 503


class LemmyRateLimited(LemmyUnavailable):
    """Lemmy refused a look-up for its per-IP rate limit: says nothing about the token."""

    code = "lemmy_rate_limited"


class LemmyError(UpstreamError):
    """Lemmy answered, but with something Warden cannot use."""

    code = "lemmy_error"


class LemmyApiMismatch(LemmyError):
    """The Lemmy asked does not speak the API version used (an unknown route, or
    Lemmy 1.0 answering through its v3 compatibility layer): detect it again."""

    code = "lemmy_api_mismatch"


class LemmyRefused(LemmyError):
    """Lemmy answered a request with its own error (`{"error": "<code>"}`), e.g.
    `incorrect_login` or `too_many_invites`; `lemmy_code` carries it."""

    code = "lemmy_refused"

    def __init__(self, message: str, lemmy_code: str = "") -> None:
        super().__init__(message)
        self.lemmy_code = lemmy_code


class NotifyError(UpstreamError):
    """An alert channel (adapters/notify/) refused a message or could not be reached."""

    code = "notify_error"
