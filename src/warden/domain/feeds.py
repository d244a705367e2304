"""Hash feeds between instances: the entries, the signed batch, and the rules a
subscriber applies before it lets one change its banks.

One Warden publishes a bank as a feed: an append-only log of numbered entries
(`add` a hash, `remove` it again). A subscriber pulls the log from its cursor
(the last sequence number it applied) and receives pushed batches; either way a
batch is accepted only when its Ed25519 signature verifies with the publisher's
pinned key and it continues exactly where the subscriber stands. The rules are
here, free of I/O, so that the pull path, the push path and the tests apply the
same ones; docs/feeds.md is the same protocol in words.

What a feed never carries: media, and who uploaded it. An entry is a hash, its
kind, the suggested action, a category and when it was listed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from warden.domain.banks import BankKind, normalise_hash
from warden.errors import (
    FeedMalformed,
    FeedOutOfOrder,
    FeedReplay,
    FeedRollback,
    FeedStale,
    FeedTruncated,
)

PROTOCOL = 1
#: Prepended to the canonical bytes before signing, so a feed signature can never be
#: mistaken for a signature over anything else the same key might sign.
SIGNING_CONTEXT = b"warden-feed-v1\n"
MAX_SAFE_INT = 2**53 - 1  # JSON numbers every implementation reads exactly
_FEED_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_FINGERPRINT = re.compile(r"^ed25519:[0-9a-f]{64}$")
_BATCH_KEYS = frozenset(
    {"v", "feed", "key", "kind", "category", "cursor", "next", "head", "issued_at", "entries"}
)
_ENTRY_KEYS = frozenset({"seq", "op", "kind", "hash", "action", "category", "at"})
E = TypeVar("E", bound=StrEnum)


class EntryOp(StrEnum):
    ADD = "add"
    REMOVE = "remove"  # a retraction: the hash was removed or unflagged


class Category(StrEnum):
    CSAM = "csam"
    SPAM = "spam"
    GORE = "gore"
    OTHER = "other"


class SuggestedAction(StrEnum):
    """What the publisher's own bank does with a match; a subscriber's trust decides
    what its own bank does (never more than the subscriber allowed)."""

    REJECT = "reject"
    REVIEW = "review"


class Trust(StrEnum):
    """How a subscriber treats a feed's entries."""

    REJECT = "reject"  # refuse outright (or only at a quorum, see `quorum_met`)
    REVIEW = "review"  # send to review


@dataclass(frozen=True)
class FeedEntry:
    seq: int
    op: EntryOp
    kind: BankKind
    hash: str
    action: SuggestedAction
    category: Category
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "op": self.op.value,
            "kind": self.kind.value,
            "hash": self.hash,
            "action": self.action.value,
            "category": self.category.value,
            "at": format_time(self.at),
        }


@dataclass(frozen=True)
class FeedBatch:
    """Entries `cursor+1 .. next` of a feed whose newest entry is `head`.

    An empty batch (`next == cursor`) says "nothing after your cursor, as of
    `issued_at`": it is signed too, so nobody can answer for the publisher."""

    feed: str
    key: str  # the publisher's key fingerprint
    kind: BankKind
    category: Category
    cursor: int
    next: int
    head: int
    issued_at: datetime
    entries: tuple[FeedEntry, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL,
            "feed": self.feed,
            "key": self.key,
            "kind": self.kind.value,
            "category": self.category.value,
            "cursor": self.cursor,
            "next": self.next,
            "head": self.head,
            "issued_at": format_time(self.issued_at),
            "entries": [e.as_json() for e in self.entries],
        }


def format_time(when: datetime) -> str:
    """UTC, whole seconds, `Z`: one spelling, so the canonical bytes are one."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise FeedMalformed(f"{what}: expected a time like 2026-01-31T12:00:00Z")
    when = _time(text)
    if when is None:
        raise FeedMalformed(f"{what}: {text[:40]!r} is not a time like 2026-01-31T12:00:00Z")
    return when


@functools.lru_cache(maxsize=4096)
def _time(text: str) -> datetime | None:
    """Cached: the entries of one batch share a few distinct seconds."""
    if not _TIME.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The bytes a batch's signature covers: JSON with sorted keys, no spaces, ASCII
    only. A valid batch holds only ASCII strings and integers, for which this is also
    RFC 8785's canonical form, so other implementations need no Python to verify."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def signed_message(batch_json: Mapping[str, Any]) -> bytes:
    return SIGNING_CONTEXT + canonical(batch_json)


def batch_id(batch_json: Mapping[str, Any]) -> str:
    """A batch's identity: SHA-256 of its canonical bytes (what replay checks remember)."""
    return hashlib.sha256(canonical(batch_json)).hexdigest()


def check_feed_name(name: str) -> str:
    if not _FEED_NAME.match(name):
        raise FeedMalformed(
            f"feed name {name[:80]!r}: use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    return name


def check_fingerprint(text: str) -> str:
    value = text.strip().lower()
    if not _FINGERPRINT.match(value):
        raise FeedMalformed(
            f"key fingerprint {text[:90]!r}: expected 'ed25519:' and 64 hex digits "
            "(`warden feeds key` on the publishing instance shows it)"
        )
    return value


def fingerprint_of(public_key: bytes) -> str:
    """`ed25519:` + SHA-256 of the raw 32-byte public key, in hex."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()


def _int(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    if type(value) is not int or not 0 <= value <= MAX_SAFE_INT:
        raise FeedMalformed(f"{what}.{key}: expected a whole number 0..2^53-1")
    return value


def _choice(enum: type[E], obj: Mapping[str, Any], key: str, what: str) -> E:
    value = obj.get(key)
    try:
        return enum(str(value) if isinstance(value, str) else "\0")
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise FeedMalformed(f"{what}.{key}: {str(value)[:40]!r} is not one of {allowed}") from None


def parse_entry(obj: object, kind: BankKind, index: int) -> FeedEntry:
    what = f"entries[{index}]"
    if not isinstance(obj, dict) or set(obj) != _ENTRY_KEYS:
        raise FeedMalformed(f"{what}: expected exactly the keys {sorted(_ENTRY_KEYS)}")
    entry_kind = _choice(BankKind, obj, "kind", what)
    if entry_kind is not kind:
        raise FeedMalformed(f"{what}: a {entry_kind.value} hash in a {kind.value} feed")
    value = obj["hash"]
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        value = normalise_hash(kind, value)
    except ValueError as exc:
        raise FeedMalformed(f"{what}.hash: {exc}") from None
    return FeedEntry(
        seq=_int(obj, "seq", what),
        op=_choice(EntryOp, obj, "op", what),
        kind=kind,
        hash=value,
        action=_choice(SuggestedAction, obj, "action", what),
        category=_choice(Category, obj, "category", what),
        at=parse_time(obj["at"], f"{what}.at"),
    )


def parse_batch(obj: object, *, max_entries: int) -> FeedBatch:
    """A batch from its JSON, every field checked; FeedMalformed / FeedTruncated say
    what is wrong. Sequence numbers must run `cursor+1 .. next` without a gap, so a
    batch cut short (or with entries taken out) never passes for a whole one."""
    if not isinstance(obj, dict) or set(obj) != _BATCH_KEYS:
        raise FeedMalformed(f"batch: expected exactly the keys {sorted(_BATCH_KEYS)}")
    if obj["v"] != PROTOCOL:
        raise FeedMalformed(f"batch.v: protocol {str(obj['v'])[:10]!r}, expected {PROTOCOL}")
    if not isinstance(obj["feed"], str) or not isinstance(obj["key"], str):
        raise FeedMalformed("batch.feed and batch.key must be strings")
    kind = _choice(BankKind, obj, "kind", "batch")
    raw = obj["entries"]
    if not isinstance(raw, list):
        raise FeedMalformed("batch.entries: expected a list")
    if len(raw) > max_entries:
        raise FeedMalformed(f"batch: {len(raw):,} entries, more than the {max_entries:,} allowed")
    batch = FeedBatch(
        feed=check_feed_name(obj["feed"]),
        key=check_fingerprint(obj["key"]),
        kind=kind,
        category=_choice(Category, obj, "category", "batch"),
        cursor=_int(obj, "cursor", "batch"),
        next=_int(obj, "next", "batch"),
        head=_int(obj, "head", "batch"),
        issued_at=parse_time(obj["issued_at"], "batch.issued_at"),
        entries=tuple(parse_entry(e, kind, i) for i, e in enumerate(raw)),
    )
    if not batch.cursor <= batch.next <= batch.head:
        raise FeedMalformed("batch: expected cursor <= next <= head")
    expected = list(range(batch.cursor + 1, batch.next + 1))
    if [e.seq for e in batch.entries] != expected:
        raise FeedTruncated(
            f"batch says entries {batch.cursor + 1}..{batch.next} but holds "
            f"{len(batch.entries)} entries that do not run without a gap"
        )
    return batch


@dataclass(frozen=True)
class Position:
    """Where a subscriber stands in one feed: what the next batch must continue."""

    cursor: int = 0  # last entry applied
    head_seen: int = 0  # highest head any accepted batch announced
    issued_seen: datetime | None = None  # newest issued_at accepted


def check_position(
    batch: FeedBatch,
    position: Position,
    *,
    now: datetime,
    max_age_s: float,
    max_skew_s: float,
) -> None:
    """Raise unless `batch` continues exactly from `position`.

    - FeedRollback: the publisher's head went backwards (a restored database, or
      someone replaying an old state to undo listings): history can only grow.
    - FeedReplay: the batch starts before the cursor (already applied), or is
      older than the newest batch accepted.
    - FeedOutOfOrder: it starts after the cursor (entries in between are
      missing; a pull from the cursor fills them).
    - FeedStale: issued too long ago, or in the future beyond the clock skew
      allowed: an old "nothing new" must not freeze a subscriber.
    """
    age = (now - batch.issued_at).total_seconds()
    if age > max_age_s:
        raise FeedStale(f"batch issued {int(age)} s ago, more than {int(max_age_s)} s")
    if age < -max_skew_s:
        raise FeedStale(f"batch issued {int(-age)} s in the future")
    if batch.head < position.head_seen:
        raise FeedRollback(
            f"feed head went back from {position.head_seen} to {batch.head}: refused, "
            "the entries already applied are kept"
        )
    if batch.cursor < position.cursor:
        raise FeedReplay(f"batch starts at {batch.cursor}, already applied up to {position.cursor}")
    if position.issued_seen is not None and batch.issued_at < position.issued_seen:
        raise FeedReplay("batch is older than one already accepted")
    if batch.cursor > position.cursor:
        raise FeedOutOfOrder(
            f"batch starts at {batch.cursor}, expected {position.cursor}: pull from the cursor"
        )


def advance(batch: FeedBatch, position: Position) -> Position:
    issued = batch.issued_at
    if position.issued_seen is not None and position.issued_seen > issued:
        issued = position.issued_seen
    return Position(batch.next, max(position.head_seen, batch.head), issued)


def final_listing(entries: Sequence[FeedEntry]) -> dict[str, FeedEntry]:
    """The last entry per hash in a batch: what the batch leaves listed or retracted."""
    last: dict[str, FeedEntry] = {}
    for entry in entries:
        last[entry.hash] = entry
    return last


def quorum_met(publishers: set[str], quorum: int) -> bool:
    """An entry enters a quorum subscription's bank only when at least `quorum`
    distinct publisher keys (not feeds: one publisher's two feeds are one voice)
    list the same hash at once."""
    return len(publishers) >= max(1, quorum)
