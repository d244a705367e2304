"""The hash types Warden banks and matches: one registry entry per type.

Modelled on python-threatexchange's `SignalType` (facebook/ThreatExchange at
baefb4ed, python-threatexchange/threatexchange/signal_type/signal_base.py:56-115:
`get_name`, `validate_signal_str`, `get_examples`, `get_index_cls`;
pdq/signal.py:56-105 for PDQ's validator, distance threshold 31 and examples).
Every place that used to branch on the kind (`if kind is BankKind.PDQ`) asks
the entry instead, and there is one hex validator (`SignalType.normalise`),
raising `BadHash`.

The index class of each type lives beside the index code (`media/matcher.py`,
`INDEXES`, keyed by `SignalType.name`): the domain stays free of NumPy so that
validating a hash never loads the matcher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from warden.errors import BadHash

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SignalType:
    """One kind of hash: how it is written, compared and exchanged."""

    name: str  # Warden's kind, as stored in `hash_banks.kind` and written in hash lists
    label: str  # how a person reads a match of this type
    hex_digits: int  # the canonical form: this many lower-case hex digits
    exchange_names: tuple[str, ...]  # ThreatExchange signal type names that mean this
    #: largest distance that is still a match by default; 0 for exact types
    default_threshold: int
    #: largest threshold the index can answer exactly
    max_threshold: int
    examples: tuple[str, ...]  # valid values (tests are built from them)

    @property
    def exact(self) -> bool:
        """An exact type matches equal values only (no distance, no orientations)."""
        return self.max_threshold == 0

    def normalise(self, value: str) -> str:
        """The canonical form (lower-case hex of the right length), or BadHash saying why."""
        text = value.strip().lower()
        if len(text) != self.hex_digits or not _HEX.fullmatch(text):
            raise BadHash(
                f"{self.name} hash must be {self.hex_digits} hex digits, got {value.strip()[:80]!r}"
            )
        return text

    def accepts(self, value: str) -> bool:
        """Whether `value` is a hash of this type (for arguments that may be a hash or
        something else, such as `warden flag ID|FILE|SHA-256`)."""
        try:
            self.normalise(value)
        except BadHash:
            return False
        return True

    def normalise_many(self, values: list[str]) -> list[str]:
        """`normalise` for a batch, checked in one pass over the joined text (an import
        validates millions); BadHash names the first bad value, as `normalise` would."""
        texts = [v.strip().lower() for v in values]
        joined = "".join(texts)
        if (not texts or _HEX.fullmatch(joined)) and all(len(t) == self.hex_digits for t in texts):
            return texts
        return [self.normalise(v) for v in values]  # raises at the first bad one

    def distance(self, a: str, b: str) -> int:
        """Bits that differ between two canonical values (exact types: 0 or 1 "bit")."""
        if self.exact:
            return int(a != b)
        return (int(a, 16) ^ int(b, 16)).bit_count()


PDQ = SignalType(
    name="pdq",
    label="PDQ",
    hex_digits=64,
    exchange_names=("pdq",),
    default_threshold=31,  # PDQ_CONFIDENT_MATCH_THRESHOLD, pdq/pdq_utils.py:10
    max_threshold=43,  # media/hashlist.py: 3 bits per substring over 11 substrings, + 10
    examples=(
        # pdq/signal.py get_examples (pdq/data/bridge-mods, misc-images, invertocat)
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22",
        "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064",
        "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d",
        "c186f9619659658c4b6916daf934496985f4259c72c39676ab9edb631c3c349c",
    ),
)

SHA256 = SignalType(
    name="sha256",
    label="the exact bytes (SHA-256)",
    hex_digits=64,
    exchange_names=("sha256", "photo_sha256"),
    default_threshold=0,
    max_threshold=0,
    examples=(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256(b"")
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",  # sha256(b"abc")
    ),
)

#: every type Warden knows, by name
SIGNAL_TYPES: dict[str, SignalType] = {s.name: s for s in (PDQ, SHA256)}
#: ThreatExchange signal type name -> the type
EXCHANGE_NAMES: dict[str, SignalType] = {
    n: s for s in SIGNAL_TYPES.values() for n in s.exchange_names
}


def signal_type(name: str) -> SignalType:
    """The registered type of this name (a `BankKind` works too), or BadHash."""
    found = SIGNAL_TYPES.get(str(name))
    if found is None:
        raise BadHash(f"unknown hash type {name!r}; use one of {', '.join(SIGNAL_TYPES)}")
    return found
