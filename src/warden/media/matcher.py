"""The bank matcher: every bank in memory, asked before the classifier runs.

One instance per process, shared by every request (it is the pipeline's
`HashMatcher`). Each SHA-256 bank is a sorted array of digests with a small
delta; each PDQ bank is a `PdqIndex` whose radius is the bank's threshold. A
scanned frame is looked up with all eight rotations and flips (PDQ changes
when a picture is rotated or mirrored), and frames whose PDQ quality is below
a bank's minimum are not matched against it (a flat or tiny picture has a
meaningless PDQ that would match other flat pictures).

Updates come from the store (`store/banks.py` loads and refreshes it): adds
and removes are visible at once, and `compact` folds them into the big
arrays off the request path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from warden.domain.banks import Bank, BankKind, HashMatch
from warden.domain.verdict import FrameHash
from warden.media.hashing import DIHEDRAL
from warden.media.hashlist import PdqIndex, hex_to_words

log = logging.getLogger(__name__)


class _DigestSet:
    """Exact SHA-256 lookup: a sorted array of 32-byte digests plus a delta dict."""

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype="S32")
        self._ids = np.empty(0, dtype=np.int64)
        self._delta: dict[bytes, int] = {}
        self._removed: frozenset[int] = frozenset()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids) + len(self._delta) - len(self._removed)

    @property
    def pending(self) -> int:
        return len(self._delta) + len(self._removed)

    def add(self, entries: Iterable[tuple[int, str]]) -> None:
        with self._lock:
            delta = dict(self._delta)
            removed = set(self._removed)
            for entry_id, value in entries:
                if entry_id in removed:  # still held, only marked: revive it
                    removed.discard(entry_id)
                else:
                    delta[bytes.fromhex(value)] = entry_id
            self._delta, self._removed = delta, frozenset(removed)

    def remove(self, entry_ids: Iterable[int]) -> None:
        with self._lock:
            self._removed = self._removed | frozenset(entry_ids)

    def lookup(self, digest: str) -> list[int]:
        key = bytes.fromhex(digest)
        keys, ids, delta, removed = self._keys, self._ids, self._delta, self._removed
        found = []
        i = int(np.searchsorted(keys, key))
        while i < len(keys) and keys[i] == key:
            found.append(int(ids[i]))
            i += 1
        if key in delta:
            found.append(delta[key])
        return [e for e in dict.fromkeys(found) if e not in removed]

    def compact(self) -> None:
        with self._lock:
            keys, ids, delta, removed = self._keys, self._ids, self._delta, self._removed
        all_keys = np.concatenate([keys, np.array(list(delta), dtype="S32")])
        all_ids = np.concatenate([ids, np.fromiter(delta.values(), dtype=np.int64)])
        if removed:
            keep = ~np.isin(all_ids, np.fromiter(removed, dtype=np.int64))
            all_keys, all_ids = all_keys[keep], all_ids[keep]
        order = np.argsort(all_keys, kind="stable")
        with self._lock:
            new_delta = {k: v for k, v in self._delta.items() if delta.get(k) != v}
            self._keys, self._ids = all_keys[order], all_ids[order]
            self._delta, self._removed = new_delta, self._removed - removed


@dataclass
class _BankIndex:
    bank: Bank
    digests: _DigestSet | None = None
    pdq: PdqIndex | None = None

    @classmethod
    def empty(cls, bank: Bank) -> _BankIndex:
        if bank.kind is BankKind.SHA256:
            return cls(bank, digests=_DigestSet())
        return cls(bank, pdq=PdqIndex(radius=bank.pdq_threshold))

    def __len__(self) -> int:
        return len(self.digests) if self.digests is not None else len(self.pdq or ())

    @property
    def pending(self) -> int:
        if self.digests is not None:
            return self.digests.pending
        return self.pdq.pending if self.pdq is not None else 0


class BankMatcher:
    """Matches scanned media against every bank; thread-safe, shared by all requests."""

    def __init__(self) -> None:
        self._banks: dict[int, _BankIndex] = {}
        self._lock = threading.Lock()

    # -- configuration and content ---------------------------------------------

    def set_banks(self, banks: Iterable[Bank]) -> None:
        """Make these the banks; a changed PDQ threshold rebuilds that bank's index."""
        with self._lock:
            current = dict(self._banks)
            wanted = {b.id: b for b in banks}
            result: dict[int, _BankIndex] = {}
            for bank_id, bank in wanted.items():
                have = current.get(bank_id)
                if have is None or have.bank.kind is not bank.kind:
                    result[bank_id] = _BankIndex.empty(bank)
                elif have.pdq is not None and have.bank.pdq_threshold != bank.pdq_threshold:
                    words, ids = have.pdq.entries()
                    pdq = PdqIndex.from_words(words, ids, radius=bank.pdq_threshold)
                    result[bank_id] = _BankIndex(bank, pdq=pdq)
                else:
                    result[bank_id] = _BankIndex(bank, have.digests, have.pdq)
            self._banks = result

    def banks(self) -> list[Bank]:
        return [b.bank for b in self._banks.values()]

    def bulk_load(self, bank_id: int, entries: Sequence[tuple[int, str]]) -> None:
        """Replace a bank's content at once (the fast path at start-up)."""
        index = self._banks[bank_id]
        if index.pdq is not None:
            words = (
                hex_to_words([v for _, v in entries])
                if entries
                else np.empty((0, 4), dtype=np.uint64)
            )
            ids = np.fromiter((e for e, _ in entries), dtype=np.int64, count=len(entries))
            index.pdq = PdqIndex.from_words(words, ids, radius=index.bank.pdq_threshold)
        else:
            digests = _DigestSet()
            digests.add(entries)
            digests.compact()
            index.digests = digests

    def add(self, bank_id: int, entries: Sequence[tuple[int, str]]) -> None:
        index = self._banks.get(bank_id)
        if index is None or not entries:
            return
        if index.pdq is not None:
            index.pdq.add([v for _, v in entries], [e for e, _ in entries])
        elif index.digests is not None:
            index.digests.add(entries)

    def remove(self, bank_id: int, entry_ids: Sequence[int]) -> None:
        index = self._banks.get(bank_id)
        if index is None or not entry_ids:
            return
        if index.pdq is not None:
            index.pdq.remove(list(entry_ids))
        elif index.digests is not None:
            index.digests.remove(entry_ids)

    def size(self, bank_id: int) -> int:
        index = self._banks.get(bank_id)
        return 0 if index is None else len(index)

    def sizes(self) -> dict[str, int]:
        return {b.bank.name: len(b) for b in self._banks.values()}

    @property
    def pending(self) -> int:
        return sum(b.pending for b in self._banks.values())

    def compact(self) -> None:
        """Fold pending changes into the big arrays (seconds at millions; run it off
        the request path: queries keep using the old arrays meanwhile)."""
        for index in list(self._banks.values()):
            if index.pending:
                if index.pdq is not None:
                    index.pdq.compact()
                elif index.digests is not None:
                    index.digests.compact()

    @staticmethod
    def warm_up() -> None:
        """Compile (or load from numba's cache) the PDQ search kernel now, so the first
        upload after a start does not wait for it."""
        words = np.zeros((1, 4), dtype=np.uint64)
        PdqIndex.from_words(words, np.zeros(1, dtype=np.int64)).query_words(words[0])

    # -- matching ----------------------------------------------------------------

    def match(self, sha256: str, frames: Sequence[FrameHash]) -> list[HashMatch]:
        """Every bank entry the media matches: SHA-256 first, then PDQ of every frame in
        all eight orientations (the best orientation per entry), nearest first."""
        found: list[HashMatch] = []
        for index in list(self._banks.values()):
            bank = index.bank
            if index.digests is not None:
                if sha256:
                    found.extend(
                        HashMatch(bank, entry_id, sha256)
                        for entry_id in index.digests.lookup(sha256)
                    )
                continue
            if index.pdq is None or not len(index.pdq):
                continue
            best: dict[int, HashMatch] = {}
            for frame in frames:
                if frame.quality < bank.min_quality:
                    continue
                for k, hit in index.pdq.match_any([frame.pdq, *frame.variants]):
                    have = best.get(hit.entry)
                    if have is None or hit.distance < have.distance:
                        best[hit.entry] = HashMatch(
                            bank, hit.entry, hit.hex, hit.distance, frame.frame, DIHEDRAL[k]
                        )
            found.extend(best.values())
        found.sort(key=lambda m: (m.distance, m.bank.name, m.entry_id))
        return found
