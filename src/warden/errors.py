"""One exception family for Warden.

Every refusal Warden makes maps to a stable machine code (what logs, metrics and
pict-rs/Lemmy callers see) and a human sentence (what an admin or user reads)::

    WardenError
    ├── ConfigError                 settings or rule files that cannot be used
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
        ├── LemmyUnavailable        lemmy_unavailable
        │   └── LemmyRateLimited    lemmy_rate_limited (Lemmy's per-IP limit)
        └── LemmyError              lemmy_error (an answer Warden cannot use)
            ├── LemmyRefused        lemmy_refused (Lemmy's own error code)
            └── LemmyApiMismatch    lemmy_api_mismatch (not this API version)
"""

from __future__ import annotations


class WardenError(Exception):
    """Base of every error Warden raises on purpose."""

    code: str = "warden_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(WardenError):
    code = "config_error"


class MediaError(WardenError):
    code = "media_error"


class EmptyMedia(MediaError):
    code = "empty_media"


class MediaTooLarge(MediaError):
    code = "file_too_large"


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


class ModelUnavailable(ScanError):
    code = "model_unavailable"


class ScanTimeout(ScanError):
    code = "scan_timeout"


class StoreError(WardenError):
    code = "store_error"


class EvidenceError(StoreError):
    code = "evidence_error"


class AuthError(WardenError):
    code = "unauthorized"


class BodyTimeout(WardenError):
    """A client sent its request body slower than `server.body_timeout_s` allows."""

    code = "body_timeout"


class UpstreamError(WardenError):
    code = "upstream_error"


class LemmyUnavailable(UpstreamError):
    code = "lemmy_unavailable"


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
