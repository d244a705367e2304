"""Interfaces the domain needs from the outside world, in one place.

Adapters and stores implement these; the media pipeline and membership logic
depend only on them, so tests can pass real implementations or small fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from warden.domain.verdict import Decision, FrameHash, Reason


class BankMatch(Protocol):
    """A match of scanned media against a hash bank (see issue: hash banks)."""

    @property
    def decision(self) -> Decision: ...

    @property
    def reason(self) -> Reason: ...

    def as_dict(self) -> dict[str, object]: ...


class HashMatcher(Protocol):
    """Looks scanned hashes up in the known-bad (and allow) banks."""

    def match(self, sha256: str, frames: Sequence[FrameHash]) -> Sequence[BankMatch]: ...
