"""Pydantic models for the HTTP edge only (the domain keeps its dataclasses)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReasonOut(BaseModel):
    code: str = Field(description="Stable machine code, e.g. label_reject, corrupt_media.")
    message: str = Field(description="The reason in words.")
    detail: dict[str, Any] = Field(description="Facts behind it: label, score, threshold, limit.")


class FrameOut(BaseModel):
    frame: int
    pdq: str
    quality: int


class MediaOut(BaseModel):
    format: str
    mime: str
    width: int
    height: int
    frame_count: int
    sampled_frames: int


class VerdictOut(BaseModel):
    """The full verdict of one scan."""

    id: int | None = Field(description="Decision id in the decisions log.")
    decision: str = Field(description="accept, review or reject.")
    reasons: list[str]
    messages: list[str]
    details: list[ReasonOut]
    sha256: str
    size: int
    pdq: str | None
    pdq_quality: int | None
    frames: list[FrameOut]
    media: MediaOut | None
    labels: dict[str, float]
    matches: list[dict[str, Any]]
    model: str | None
    timings_ms: dict[str, float]


class ErrorOut(BaseModel):
    """Every refusal and error: a machine code and a sentence."""

    error: str
    message: str


class ReloadOut(BaseModel):
    config_version: str = Field(description="Digest of the policy now in force.")
