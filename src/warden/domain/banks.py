"""Hash banks: named lists of known media, and what a match with one means.

The strongest defence against a repeat attack is recognising an image seen
before, even resized or recompressed. A bank holds hashes of one kind — SHA-256
(the exact bytes) or PDQ (the picture, within a Hamming distance) — and says
what a match does: refuse, send to review, or allow (an allow bank overrides a
false positive of the classifier or of another bank). A bank flagged `csam`
marks its matches so that the media is preserved as evidence and never shown
in any console.

Pure data and rules: no storage, no index (see `media/matcher.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from warden.domain.signals import PDQ, signal_type
from warden.domain.verdict import Decision, Reason
from warden.errors import InputError

DEFAULT_PDQ_THRESHOLD = PDQ.default_threshold
DEFAULT_MIN_QUALITY = 50
MAX_PDQ_THRESHOLD = PDQ.max_threshold  # the index's limit (4 bits per substring, 11 substrings)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class BankKind(StrEnum):
    """The hash type a bank holds: a name in the registry (domain/signals.py)."""

    SHA256 = "sha256"
    PDQ = "pdq"


class BankAction(StrEnum):
    REJECT = "reject"
    REVIEW = "review"
    ALLOW = "allow"

    @property
    def decision(self) -> Decision:
        return {
            BankAction.REJECT: Decision.REJECT,
            BankAction.REVIEW: Decision.REVIEW,
            BankAction.ALLOW: Decision.ACCEPT,
        }[self]


@dataclass(frozen=True)
class Bank:
    """A named list of hashes of one kind, and the action a match takes."""

    id: int
    name: str
    kind: BankKind
    action: BankAction = BankAction.REJECT
    csam: bool = False
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD
    min_quality: int = DEFAULT_MIN_QUALITY
    description: str = ""

    def __post_init__(self) -> None:
        check_bank_name(self.name)
        if not 0 <= self.pdq_threshold <= MAX_PDQ_THRESHOLD:
            raise InputError(f"pdq_threshold must be 0..{MAX_PDQ_THRESHOLD} bits")
        if not 0 <= self.min_quality <= 100:
            raise InputError("min_quality must be 0..100")
        if self.csam and self.action is not BankAction.REJECT:
            raise InputError("a csam bank must reject: its matches are refused and preserved")


@dataclass(frozen=True)
class BankEntry:
    """One hash in a bank, with where it came from (kept for the authorities)."""

    id: int
    bank: str
    kind: BankKind
    value: str
    source: str = ""
    added_by: str = ""
    reason: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class HashMatch:
    """Scanned media matched an entry of a bank."""

    bank: Bank
    entry_id: int
    value: str  # the bank's hash that matched
    distance: int = 0  # PDQ bits that differ; 0 for SHA-256
    frame: int = 0
    variant: str = "original"  # which rotation/flip of the frame matched
    details: dict[str, object] = field(default_factory=dict)

    @property
    def decision(self) -> Decision:
        return self.bank.action.decision

    @property
    def reason(self) -> Reason:
        b = self.bank
        signal = signal_type(b.kind)
        if signal.exact:
            how = signal.label
        else:
            how = f"{signal.label} within {self.distance} of {b.pdq_threshold} bits"
            if self.variant != "original":
                how += f", {self.variant}"
        code = "hash_allow" if b.action is BankAction.ALLOW else "hash_match"
        verb = {BankAction.REJECT: "refused", BankAction.REVIEW: "held for review"}.get(
            b.action, "allowed"
        )
        return Reason(
            code, f"{verb}: matches bank '{b.name}' entry {self.entry_id} by {how}", self.as_dict()
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "bank": self.bank.name,
            "kind": self.bank.kind.value,
            "action": self.bank.action.value,
            "csam": self.bank.csam,
            "entry": self.entry_id,
            "value": self.value,
            "distance": self.distance,
            "frame": self.frame,
            "variant": self.variant,
        }


def check_bank_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"bank name {name!r}: use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def normalise_hash(kind: BankKind, value: str) -> str:
    """The canonical form of a hash, or BadHash (a ValueError) naming why."""
    return signal_type(kind).normalise(value)
