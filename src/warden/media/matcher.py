"""The bank matcher: every bank in memory, asked before the classifier runs.

One instance per process, shared by every request (it is the pipeline's
`HashMatcher`). Each SHA-256 bank is a sorted array of digests with a small
delta; each PDQ bank is a `PdqIndex` whose radius is the bank's threshold. A
scanned frame is looked up with all eight rotations and flips (PDQ changes
when a picture is rotated or mirrored), and frames whose PDQ quality is below
a bank's minimum are not matched against it (a flat or tiny picture has a
meaningless PDQ that would match other flat pictures).

Each hash type's index class is in `INDEXES` (keyed by the registry's names,
domain/signals.py). Updates come from the store (`services/bank_sync.py` loads and
refreshes it): adds
and removes are visible at once, and `compact` folds them into the big
arrays off the request path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

import numpy as np

from warden.domain.banks import Bank, HashMatch
from warden.domain.signals import PDQ, SHA256, signal_type
from warden.domain.verdict import FrameHash
from warden.media.hashing import DIHEDRAL
from warden.media.hashlist import PdqIndex, hex_to_words, load_kernel

log = logging.getLogger(__name__)


class _DigestSet:
    """Exact SHA-256 lookup: a sorted array of 32-byte digests plus a delta dict."""

    def __init__(self, keys: np.ndarray | None = None, ids: np.ndarray | None = None) -> None:
        self._keys = np.empty(0, dtype="S32") if keys is None else keys
        self._ids = np.empty(0, dtype=np.int64) if ids is None else ids
        self._delta: dict[bytes, int] = {}
        self._removed: frozenset[int] = frozenset()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids) + len(self._delta) - len(self._removed)

    @property
    def pending(self) -> int:
        return len(self._delta) + len(self._removed)

    @property
    def keys(self) -> np.ndarray:
        return self._keys

    @property
    def ids(self) -> np.ndarray:
        return self._ids

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

    def revive(self, entries: Iterable[tuple[int, str]]) -> None:
        """Like `add`, leaving alone an entry held live already (see PdqIndex.revive)."""
        self.add([(e, v) for e, v in entries if e in self._removed or e not in self.lookup(v)])

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


class _DigestIndex:
    """An exact type's bank (SHA-256): equal values only, looked up by the file's digest."""

    def __init__(self, bank: Bank, digests: _DigestSet | None = None) -> None:
        self.bank = bank
        self.digests = digests or _DigestSet()

    def __len__(self) -> int:
        return len(self.digests)

    @property
    def pending(self) -> int:
        return self.digests.pending

    def with_bank(self, bank: Bank) -> _DigestIndex:
        return _DigestIndex(bank, self.digests)

    def bulk_load(self, entries: Sequence[tuple[int, str]]) -> None:
        digests = _DigestSet()
        digests.add(entries)
        digests.compact()
        self.digests = digests

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        self.digests.add(entries)

    def remove(self, entry_ids: Sequence[int]) -> None:
        self.digests.remove(entry_ids)

    def revive(self, entries: Sequence[tuple[int, str]]) -> None:
        self.digests.revive(entries)

    def compact(self) -> None:
        self.digests.compact()

    def match(self, sha256: str, frames: Sequence[FrameHash]) -> list[HashMatch]:
        if not sha256:
            return []
        return [HashMatch(self.bank, e, sha256) for e in self.digests.lookup(sha256)]

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The arrays to persist, or None while changes are pending (not yet folded)."""
        d = self.digests
        return None if d.pending else {"keys": d.keys, "ids": d.ids}

    @classmethod
    def from_arrays(cls, bank: Bank, arrays: dict[str, np.ndarray]) -> _DigestIndex:
        return cls(bank, _DigestSet(arrays["keys"], arrays["ids"]))


class _PdqBankIndex:
    """A distance type's bank (PDQ): a `PdqIndex` whose radius is the bank's threshold,
    asked with every orientation of every frame good enough for the bank."""

    def __init__(self, bank: Bank, pdq: PdqIndex | None = None) -> None:
        self.bank = bank
        self.pdq = pdq or PdqIndex(radius=bank.pdq_threshold)

    def __len__(self) -> int:
        return len(self.pdq)

    @property
    def pending(self) -> int:
        return self.pdq.pending

    def with_bank(self, bank: Bank) -> _PdqBankIndex:
        if bank.pdq_threshold == self.pdq.radius:
            return _PdqBankIndex(bank, self.pdq)
        words, ids = self.pdq.entries()
        return _PdqBankIndex(bank, PdqIndex.from_words(words, ids, radius=bank.pdq_threshold))

    def bulk_load(self, entries: Sequence[tuple[int, str]]) -> None:
        words = (
            hex_to_words([v for _, v in entries]) if entries else np.empty((0, 4), dtype=np.uint64)
        )
        ids = np.fromiter((e for e, _ in entries), dtype=np.int64, count=len(entries))
        self.pdq = PdqIndex.from_words(words, ids, radius=self.bank.pdq_threshold)

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        self.pdq.add([v for _, v in entries], [e for e, _ in entries])

    def remove(self, entry_ids: Sequence[int]) -> None:
        self.pdq.remove(list(entry_ids))

    def revive(self, entries: Sequence[tuple[int, str]]) -> None:
        self.pdq.revive([v for _, v in entries], [e for e, _ in entries])

    def compact(self) -> None:
        self.pdq.compact()

    def match(self, sha256: str, frames: Sequence[FrameHash]) -> list[HashMatch]:
        """Every entry within the bank's threshold of any orientation of any frame good
        enough for the bank, at its best (distance, then the first frame and
        orientation): all of a file's hashes go to the index in one search."""
        if not len(self.pdq):
            return []
        bank = self.bank
        asked = [f for f in frames if f.quality >= bank.min_quality]
        if not asked:
            return []
        hexes: list[str] = []
        origin: list[tuple[int, int]] = []  # per query hash: (frame number, orientation)
        for frame in asked:
            for k, value in enumerate((frame.pdq, *frame.variants)):
                hexes.append(value)
                origin.append((frame.frame, k))
        found = []
        for q, hit in self.pdq.match_words(hex_to_words(hexes)):
            frame_no, k = origin[q]
            found.append(HashMatch(bank, hit.entry, hit.hex, hit.distance, frame_no, DIHEDRAL[k]))
        return found

    def arrays(self) -> dict[str, np.ndarray] | None:
        return self.pdq.arrays()

    @classmethod
    def from_arrays(cls, bank: Bank, arrays: dict[str, np.ndarray]) -> _PdqBankIndex:
        return cls(bank, PdqIndex.from_arrays(arrays, radius=bank.pdq_threshold))


_BankIndex = _DigestIndex | _PdqBankIndex

#: the index class of each registered hash type (domain/signals.py), by its name
INDEXES: dict[str, type[_DigestIndex] | type[_PdqBankIndex]] = {
    SHA256.name: _DigestIndex,
    PDQ.name: _PdqBankIndex,
}


def _empty(bank: Bank) -> _BankIndex:
    return INDEXES[signal_type(bank.kind).name](bank)


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
            result: dict[int, _BankIndex] = {}
            for bank in banks:
                have = current.get(bank.id)
                if have is None or have.bank.kind is not bank.kind:
                    result[bank.id] = _empty(bank)
                else:
                    result[bank.id] = have.with_bank(bank)
            self._banks = result

    def banks(self) -> list[Bank]:
        return [b.bank for b in self._banks.values()]

    def bulk_load(self, bank_id: int, entries: Sequence[tuple[int, str]]) -> None:
        """Replace a bank's content at once (the fast path at start-up)."""
        self._banks[bank_id].bulk_load(entries)

    def adopt(self, bank_id: int, arrays: dict[str, np.ndarray]) -> None:
        """Replace a bank's content with saved arrays (media/index_file.py), used as they
        are (memory-mapped): nothing is rebuilt."""
        bank = self._banks[bank_id].bank
        self._banks[bank_id] = INDEXES[signal_type(bank.kind).name].from_arrays(bank, arrays)

    def arrays(self) -> dict[int, dict[str, np.ndarray]] | None:
        """Every bank's arrays to save, or None while any bank has changes not yet folded."""
        found = {}
        for bank_id, index in list(self._banks.items()):
            arrays = index.arrays()
            if arrays is None:
                return None
            found[bank_id] = arrays
        return found

    def nbytes(self) -> int:
        """Bytes the banks' arrays take (memory-mapped or not), for memory reports."""
        return sum(
            a.nbytes
            for index in list(self._banks.values())
            for a in (index.arrays() or {}).values()
        )

    def add(self, bank_id: int, entries: Sequence[tuple[int, str]]) -> None:
        index = self._banks.get(bank_id)
        if index is not None and entries:
            index.add(entries)

    def revive(self, bank_id: int, entries: Sequence[tuple[int, str]]) -> None:
        """Entries re-added after a removal: added unless already held live."""
        index = self._banks.get(bank_id)
        if index is not None and entries:
            index.revive(entries)

    def remove(self, bank_id: int, entry_ids: Sequence[int]) -> None:
        index = self._banks.get(bank_id)
        if index is not None and entry_ids:
            index.remove(entry_ids)

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
                index.compact()

    @staticmethod
    def warm_up() -> None:
        """Load the PDQ search kernel (compiled, or from numba's cache) now, for writable
        and for read-only (memory-mapped, saved) tables, so that the first upload after
        a start does not wait for it. Until then, queries run in NumPy."""
        load_kernel()
        words = np.zeros((1, 4), dtype=np.uint64)
        index = PdqIndex.from_words(words, np.zeros(1, dtype=np.int64))
        index.query_words(words[0], compiled=True)
        saved = {k: v.copy() for k, v in (index.arrays() or {}).items()}
        for array in saved.values():
            array.flags.writeable = False
        PdqIndex.from_arrays(saved).query_words(words[0], compiled=True)

    # -- matching ----------------------------------------------------------------

    def match(self, sha256: str, frames: Sequence[FrameHash]) -> list[HashMatch]:
        """Every bank entry the media matches: SHA-256 first, then PDQ of every frame in
        all eight orientations (the best orientation per entry), nearest first."""
        found: list[HashMatch] = []
        for index in list(self._banks.values()):
            found.extend(index.match(sha256, frames))
        found.sort(key=lambda m: (m.distance, m.bank.name, m.entry_id))
        return found
