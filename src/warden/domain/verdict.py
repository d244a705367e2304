"""The verdict: what the media gate decided about one piece of media, and why.

A verdict is the single value every part of Warden passes around after a scan:
pict-rs gets a status code from it, the decisions log stores it, `warden scan`
prints it. It is a frozen dataclass so nothing downstream can quietly change a
decision after it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Decision(StrEnum):
    """The three outcomes, ordered by severity (see `severity`)."""

    ACCEPT = "accept"
    REVIEW = "review"
    REJECT = "reject"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def refused(self) -> bool:
        """True when the media must not be stored (review is stored and queued)."""
        return self is Decision.REJECT


_SEVERITY = {Decision.ACCEPT: 0, Decision.REVIEW: 1, Decision.REJECT: 2}


def worst(decisions: list[Decision]) -> Decision:
    """The most severe of several decisions (accept when there are none)."""
    return max(decisions, key=lambda d: d.severity, default=Decision.ACCEPT)


@dataclass(frozen=True)
class Reason:
    """Why a decision was made: a stable machine code and a sentence for people.

    `detail` carries the facts behind the sentence (label, score, threshold,
    limit, bank...) so callers can render or filter without parsing text.
    """

    code: str
    message: str
    detail: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": dict(self.detail)}


@dataclass(frozen=True)
class FrameHash:
    """The PDQ hash of one sampled frame (frame 0 for a still image)."""

    frame: int
    pdq: str
    quality: int
    #: PDQ of the frame's seven rotations and flips (media/hashing.DIHEDRAL[1:]),
    #: so banks match a rotated or mirrored repost; not logged (recomputable).
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaInfo:
    """What decoding learned about the media, from its bytes (never its name)."""

    format: str
    mime: str
    width: int
    height: int
    frame_count: int
    sampled_frames: int


@dataclass(frozen=True)
class Verdict:
    """The outcome of one scan.

    `labels` maps each classifier label to its best score over the sampled
    frames; `timings` are milliseconds per stage. `sha256` is always set when
    bytes were seen; `frames` is empty when the media could not be decoded.
    """

    decision: Decision
    reasons: tuple[Reason, ...]
    sha256: str
    size: int
    media: MediaInfo | None = None
    frames: tuple[FrameHash, ...] = ()
    labels: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    timings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    model: str | None = None
    matches: tuple[Mapping[str, Any], ...] = ()

    @property
    def pdq(self) -> str | None:
        """The best-quality PDQ hash (the first frame's on ties), or None."""
        best = self.best_frame
        return best.pdq if best else None

    @property
    def pdq_quality(self) -> int | None:
        best = self.best_frame
        return best.quality if best else None

    @property
    def best_frame(self) -> FrameHash | None:
        if not self.frames:
            return None
        return max(self.frames, key=lambda f: (f.quality, -f.frame))

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def portable(self) -> Verdict:
        """A copy made of plain dicts and tuples, so it pickles (process pools, Ray)."""
        return replace(
            self,
            reasons=tuple(replace(r, detail=dict(r.detail)) for r in self.reasons),
            labels=dict(self.labels),
            timings=dict(self.timings),
            matches=tuple(dict(m) for m in self.matches),
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view; the shape of the API and of `warden scan --json`."""
        return {
            "decision": self.decision.value,
            "reasons": self.codes,
            "messages": [r.message for r in self.reasons],
            "details": [r.as_dict() for r in self.reasons],
            "sha256": self.sha256,
            "size": self.size,
            "pdq": self.pdq,
            "pdq_quality": self.pdq_quality,
            "frames": [{"frame": f.frame, "pdq": f.pdq, "quality": f.quality} for f in self.frames],
            "media": None
            if self.media is None
            else {
                "format": self.media.format,
                "mime": self.media.mime,
                "width": self.media.width,
                "height": self.media.height,
                "frame_count": self.media.frame_count,
                "sampled_frames": self.media.sampled_frames,
            },
            "labels": {k: round(float(v), 4) for k, v in self.labels.items()},
            "matches": [dict(m) for m in self.matches],
            "model": self.model,
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
