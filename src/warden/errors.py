"""One exception family for Warden.

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
    ├── InviteRefused               invite_refused (and its own codes: no_invites_left, …)
    ├── BankError                   bank_error (a bank that does not exist or refuses)
    ├── FlagError                   flag_error
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
    │   └── ScanTimeout             scan_timeout
    ├── StoreError                  the database or evidence store failed
    │   └── EvidenceError           evidence_error
    ├── AuthError                   missing or bad credentials
    ├── BodyTimeout                 body_timeout (a request body slower than server.body_timeout_s)
    └── UpstreamError               a service Warden depends on failed
        ├── PictrsError             pictrs_error
        │   └── HashListingUnavailable  pictrs_no_hash_listing (pict-rs 0.4.x)
        ├── LemmySchemaError        lemmy_schema_unknown (purge reads Lemmy's tables)
        ├── LemmyUnavailable        lemmy_unavailable
        │   └── LemmyRateLimited    lemmy_rate_limited (Lemmy's per-IP limit)
        └── LemmyError              lemmy_error (an answer Warden cannot use)
            ├── LemmyRefused        lemmy_refused (Lemmy's own error code)
            └── LemmyApiMismatch    lemmy_api_mismatch (not this API version)

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

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(WardenError):
    code = "config_error"
    status = 422


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
    code = "not_found"
    status = 404


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


class MediaError(WardenError):
    code = "media_error"
    status = 422


class EmptyMedia(MediaError):
    code = "empty_media"


class MediaTooLarge(MediaError):
    code = "file_too_large"
    status = 413


class UnsupportedFormat(MediaError):
    code = "unsupported_format"


class PolyglotMedia(MediaError):
    code = "polyglot_media"


class TruncatedMedia(MediaError):
    code = "truncated_media"


class CorruptMedia(MediaError):
    code = "corrupt_media"


class BadDimensions(MediaError):
    code = "bad_dimensions"


class TooManyPixels(MediaError):
    code = "too_many_pixels"


class TooManyFrames(MediaError):
    code = "too_many_frames"


class TooManyScans(MediaError):
    """A progressive JPEG with more scans than `media.max_scans`: each scan is a
    full pass over the image, so a few hundred bytes of repeated scans cost seconds."""

    code = "too_many_scans"


class DecodeTimeout(MediaError):
    code = "decode_timeout"


class ScanError(WardenError):
    code = "scan_error"
    status = 503


class ModelUnavailable(ScanError):
    code = "model_unavailable"


class ScanTimeout(ScanError):
    code = "scan_timeout"


class StoreError(WardenError):
    code = "store_error"
    status = 503


class EvidenceError(StoreError):
    code = "evidence_error"


class AuthError(WardenError):
    code = "unauthorized"
    status = 401


class BodyTimeout(WardenError):
    """A client sent its request body slower than `server.body_timeout_s` allows."""

    code = "body_timeout"
    status = 408


class UpstreamError(WardenError):
    code = "upstream_error"
    status = 502


class PictrsError(UpstreamError):
    code = "pictrs_error"


class HashListingUnavailable(PictrsError):
    """pict-rs has no `/internal/hashes` (0.4.x): storage cannot be listed through it."""

    code = "pictrs_no_hash_listing"


class LemmySchemaError(UpstreamError):
    """Lemmy's database has a shape the purge does not know: it refuses to guess."""

    code = "lemmy_schema_unknown"


class LemmyUnavailable(UpstreamError):
    code = "lemmy_unavailable"
    status = 503


class LemmyRateLimited(LemmyUnavailable):
    """Lemmy refused a look-up for its per-IP rate limit: says nothing about the token."""

    code = "lemmy_rate_limited"


class LemmyError(UpstreamError):
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
