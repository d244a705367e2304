"""The PDQ index: every stored hash within Hamming distance r of a query, exactly.

Slightly over ~400 lines: the multi-index layout and its exact search are one
algorithm (the compiled kernel is apart, in media/pdq_kernel.py).

Multi-index hashing (Norouzi, Punjani and Fleet): the 256 bits are cut into 11
substrings (three of 24 bits, eight of 23). If two hashes differ in at most 31
bits, then by pigeonhole at least one of the 11 substrings differs in at most
floor(31 / 11) = 2 bits. So every true match is among the entries whose
substring i is within 2 bits of the query's substring i, for some i.

Each substring table is sorted by the substring and addressed by its top 16
bits (an offsets array of 65,537 entries, small enough to stay in cache); the
remaining 7 or 8 bits are stored beside each entry as one byte. A query visits,
per table, the buckets whose top 16 bits are within 2 bits of the query's (137
buckets) and, in each, keeps the entries whose low byte is within the bits of
budget left; only those are verified with an exact popcount over the four
64-bit words. Recall is exact by construction and precision by verification.

The inner loop is compiled with numba (media/pdq_kernel.py) once `load_kernel`
ran (`warden serve` does at start): in NumPy the ragged bucket reads cost more
than the search (milliseconds at 10 million hashes against 0.1 ms), but a
one-shot process (`warden hashes match`) saves numba's import. A scan asks all
of a file's hashes (eight orientations per frame, the robust ones) in one call
(`query_many`), so the per-call costs are paid once per file.
Memory is 32 bytes per hash plus 5 bytes per hash per table: 87 bytes per
hash, about 0.87 GB at 10 million.

Updates are copy-on-write: `add` goes to a small delta searched by brute
force, folded into the main tables by `compact` (which the bank matcher runs
off the request path); `remove` marks a tombstone. Queries read one immutable
snapshot, so they are safe from any thread while another adds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from warden.domain.signals import PDQ
from warden.errors import BadHash

WORDS = 4  # 256 bits as four uint64, big-endian (bit 0 = most significant)
TABLES = 11
TOP_BITS = 16
MAX_RADIUS = 4 * TABLES - 1  # up to 3 bits per substring


def _layout() -> tuple[np.ndarray, np.ndarray]:
    lengths = [24] * (256 - 23 * TABLES) + [23] * (TABLES - (256 - 23 * TABLES))
    starts = np.cumsum([0, *lengths[:-1]])
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


STARTS, LENGTHS = _layout()


def hex_to_words(hexes: list[str] | tuple[str, ...]) -> np.ndarray:
    """PDQ hex strings -> (n, 4) uint64, big-endian words (bit 0 = most significant)."""
    try:
        raw = bytes.fromhex("".join(hexes))
    except ValueError:
        raw = b""
    if len(raw) != 32 * len(hexes):
        bad = next((h for h in hexes if len(h) != 64), hexes[0] if hexes else "")
        PDQ.normalise(bad)  # names the first bad one (BadHash)
        raise BadHash("every PDQ hash must be 64 hex digits")
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, WORDS)


def words_to_hex(words: np.ndarray) -> list[str]:
    data = np.ascontiguousarray(words.astype(">u8")).tobytes()
    return [data[i : i + 32].hex() for i in range(0, len(data), 32)]


def popcount_distance(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance from one query (4,) to every row (n, 4)."""
    counts: np.ndarray = np.bitwise_count(rows ^ query[None, :]).sum(axis=1, dtype=np.int64)
    return counts


def _substrings(words: np.ndarray, start: int, length: int) -> np.ndarray:
    """Bits [start, start + length) of every row, as int64 (NumPy, for building)."""
    w, off = divmod(start, 64)
    end = off + length
    mask = np.uint64((1 << length) - 1)
    if end <= 64:
        return ((words[:, w] >> np.uint64(64 - end)) & mask).astype(np.int64)
    hi = words[:, w] << np.uint64(end - 64)
    lo = words[:, w + 1] >> np.uint64(128 - end)
    return ((hi | lo) & mask).astype(np.int64)


def _top_masks(budget: int) -> tuple[np.ndarray, np.ndarray]:
    """XOR masks over the top 16 bits with at most `budget` bits set, and their weights."""
    masks, weights = [0], [0]
    for k in range(1, budget + 1):
        for bits in combinations(range(TOP_BITS), k):
            masks.append(sum(1 << b for b in bits))
            weights.append(k)
    return np.asarray(masks, dtype=np.int64), np.asarray(weights, dtype=np.int64)


_BYTE_POP = np.asarray([bin(i).count("1") for i in range(256)], dtype=np.int64)

#: the compiled search (media/pdq_kernel.py) once `load_kernel` ran, else None
_KERNEL: Any = None


def load_kernel() -> None:
    """Load (or compile) the numba search kernel; until then queries use the NumPy
    search, which answers the same. A long-running `warden serve` wants the kernel
    (0.1 ms a query at 10 M hashes); a one-shot `warden hashes match` does not (numba
    and the SciPy it pulls in cost more to import than its few NumPy queries)."""
    global _KERNEL
    if _KERNEL is None:
        # imported here, not at the top: numba is heavy and only long-lived processes need it
        from warden.media.pdq_kernel import find

        _KERNEL = find


def _search_numpy(
    q: np.ndarray, t: _Tables, masks: np.ndarray, weights: np.ndarray, budget: int, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's search in NumPy: the same buckets, the same low-byte filter, the
    same exact verification; (rows, distances) of every row within the radius."""
    found = []
    for table in range(TABLES):
        length = int(LENGTHS[table])
        value = int(_substrings(q[None, :], int(STARTS[table]), length)[0])
        low_bits = length - TOP_BITS
        q_top, q_low = value >> low_bits, value & ((1 << low_bits) - 1)
        buckets = q_top ^ masks
        first = t.offsets[table, buckets].astype(np.int64)
        sizes = t.offsets[table, buckets + 1].astype(np.int64) - first
        total = int(sizes.sum())
        if not total:
            continue
        pos = np.repeat(first - (np.cumsum(sizes) - sizes), sizes) + np.arange(total)
        ok = _BYTE_POP[t.low[table, pos].astype(np.int64) ^ q_low] <= np.repeat(
            budget - weights, sizes
        )
        found.append(t.order[table, pos[ok]])
    rows = np.unique(np.concatenate(found)).astype(np.int64) if found else _EMPTY_IDS
    dist = popcount_distance(t.words[rows], q) if len(rows) else _EMPTY_IDS
    near = dist <= radius
    return rows[near], dist[near]


@dataclass(frozen=True)
class _Tables:
    """The main, immutable part of the index: one sorted table per substring.

    Table t lists the rows sorted by substring t (`order`), the substring's
    bits below the top 16 beside them (`low`, one byte each, so a bucket's
    filter reads a few contiguous cache lines), and where each top-16 bucket
    starts (`offsets`).
    """

    words: np.ndarray  # (n, 4) uint64
    ids: np.ndarray  # (n,) int64 entry ids
    order: np.ndarray  # (11, n) uint32 row numbers in bucket order
    low: np.ndarray  # (11, n) uint8
    offsets: np.ndarray  # (11, 65537) int32 (int64 past 2**31 rows) bucket starts

    @classmethod
    def build(cls, words: np.ndarray, ids: np.ndarray) -> _Tables:
        n = len(ids)
        if n >= 1 << 32:
            raise ValueError("a PDQ index holds at most 2**32 - 1 hashes")
        order = np.empty((TABLES, n), dtype=np.uint32)
        low = np.empty((TABLES, n), dtype=np.uint8)
        offsets = np.zeros((TABLES, (1 << TOP_BITS) + 1), dtype=np.int64)
        for t in range(TABLES):
            length = int(LENGTHS[t])
            value = _substrings(words, int(STARTS[t]), length)
            sort = np.argsort(value, kind="stable")
            order[t] = sort
            low[t] = value[sort] & ((1 << (length - TOP_BITS)) - 1)
            top = value >> (length - TOP_BITS)
            np.cumsum(np.bincount(top, minlength=1 << TOP_BITS), out=offsets[t, 1:])
            del value, sort, top
        small = offsets.astype(np.int32) if n < 1 << 31 else offsets
        return cls(words, ids, order, low, small)


@dataclass(frozen=True)
class _Snapshot:
    tables: _Tables
    delta_words: np.ndarray
    delta_ids: np.ndarray
    removed: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Hit:
    """One indexed entry within the radius of a query, and its stored hash."""

    entry: int
    distance: int
    words: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def hex(self) -> str:
        return b"".join(w.to_bytes(8, "big") for w in self.words).hex()


_EMPTY_WORDS = np.empty((0, WORDS), dtype=np.uint64)
_EMPTY_IDS = np.empty(0, dtype=np.int64)


class PdqIndex:
    """Exact radius search over PDQ hashes; entries are integer ids chosen by the caller."""

    def __init__(self, radius: int = 31) -> None:
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be 0..{MAX_RADIUS}")
        self.radius = radius
        self._budget = radius // TABLES
        self._masks, self._weights = _top_masks(self._budget)
        self._snap = _Snapshot(_Tables.build(_EMPTY_WORDS, _EMPTY_IDS), _EMPTY_WORDS, _EMPTY_IDS)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        s = self._snap
        return len(s.tables.ids) + len(s.delta_ids) - len(s.removed)

    @property
    def pending(self) -> int:
        """Entries added or removed since the last compaction."""
        s = self._snap
        return len(s.delta_ids) + len(s.removed)

    @classmethod
    def from_words(cls, words: np.ndarray, ids: np.ndarray, radius: int = 31) -> PdqIndex:
        """Build at once from (n, 4) uint64 words (the fast path for big banks)."""
        index = cls(radius)
        tables = _Tables.build(
            np.ascontiguousarray(words, dtype=np.uint64), np.asarray(ids, dtype=np.int64)
        )
        index._snap = _Snapshot(tables, _EMPTY_WORDS, _EMPTY_IDS)
        return index

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The main tables by name, to save (media/index_file.py); None while changes
        are pending, since saved tables must hold exactly the live entries."""
        s = self._snap
        if len(s.delta_ids) or s.removed:
            return None
        t = s.tables
        return {
            "words": t.words,
            "ids": t.ids,
            "order": t.order,
            "low": t.low,
            "offsets": t.offsets,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], radius: int = 31) -> PdqIndex:
        """An index over saved tables (from `arrays`), used as they are: memory-mapped
        files stay mapped, so a 10-million-hash bank opens without building anything."""
        names = ("words", "ids", "order", "low", "offsets")
        tables = _Tables(*(arrays[n] for n in names))
        n = len(tables.ids)
        shapes_ok = (
            tables.words.shape == (n, WORDS)
            and tables.order.shape == (TABLES, n)
            and tables.low.shape == (TABLES, n)
            and tables.offsets.shape == (TABLES, (1 << TOP_BITS) + 1)
            and (n == 0 or int(tables.offsets[0, -1]) == n)
        )
        if not shapes_ok:
            raise ValueError("saved PDQ tables do not fit together")
        index = cls(radius)
        index._snap = _Snapshot(tables, _EMPTY_WORDS, _EMPTY_IDS)
        return index

    def add(self, hexes: list[str], ids: list[int]) -> None:
        self.add_words(hex_to_words(hexes), np.asarray(ids, dtype=np.int64))

    def add_words(self, words: np.ndarray, ids: np.ndarray) -> None:
        """Add entries; an id that was removed (still held, marked) is revived instead,
        since an entry's id always names the same hash."""
        with self._lock:
            s = self._snap
            revive = frozenset(int(i) for i in ids) & s.removed
            fresh = ~np.isin(ids, np.fromiter(revive, dtype=np.int64)) if revive else slice(None)
            self._snap = _Snapshot(
                s.tables,
                np.concatenate([s.delta_words, words[fresh].astype(np.uint64)]),
                np.concatenate([s.delta_ids, ids[fresh].astype(np.int64)]),
                s.removed - revive,
            )

    def revive(self, hexes: list[str], ids: list[int]) -> None:
        """Bring entries back that the bank's log says were re-added: an id this index
        holds live already is left alone (a replay may name an entry whose removal it
        never saw), a tombstoned one is un-marked, any other is added."""
        s = self._snap
        held = np.concatenate([s.tables.ids, s.delta_ids])
        wanted = np.asarray(ids, dtype=np.int64)
        # few ids (revivals are rare): one vectorised comparison sweep per id
        present = {int(i) for i in wanted if bool((held == i).any())} - s.removed
        keep = [k for k, i in enumerate(ids) if int(i) not in present]
        if keep:
            self.add([hexes[k] for k in keep], [ids[k] for k in keep])

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            s = self._snap
            self._snap = _Snapshot(s.tables, s.delta_words, s.delta_ids, s.removed | frozenset(ids))

    def compact(self) -> None:
        """Fold the delta and the tombstones into new main tables.

        The tables are built outside the lock from a snapshot, then swapped in
        with whatever was added or removed meanwhile kept as the new delta, so
        queries and adds never wait for a rebuild.
        """
        base = self._snap
        words, ids = self._live(base)
        tables = _Tables.build(words, ids)
        with self._lock:
            now = self._snap
            added = len(now.delta_ids) - len(base.delta_ids)
            self._snap = _Snapshot(
                tables,
                now.delta_words[len(base.delta_ids) :] if added else _EMPTY_WORDS,
                now.delta_ids[len(base.delta_ids) :] if added else _EMPTY_IDS,
                now.removed - base.removed,
            )

    def query(self, pdq_hex: str) -> list[Hit]:
        """Every entry within the radius, nearest first."""
        return self.query_words(hex_to_words([pdq_hex])[0])

    def query_words(self, query: np.ndarray, *, compiled: bool | None = None) -> list[Hit]:
        """Every entry within the radius, nearest first; with the numba kernel when it
        is loaded (`load_kernel`) or `compiled` asks for it, else in NumPy."""
        return [h for _, h in self.query_many(query, compiled=compiled)]

    def query_many(
        self, queries: np.ndarray, *, compiled: bool | None = None
    ) -> list[tuple[int, Hit]]:
        """(query number, hit) for every entry within the radius of each of the (Q, 4)
        queries, nearest first: one kernel call for all of them (a scan asks a dozen
        hashes per file, and the per-call costs were most of the lookup)."""
        s = self._snap
        t = s.tables
        qs = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, WORDS)
        hits: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        if compiled:
            load_kernel()
        if len(t.ids) and (_KERNEL is None or compiled is False):
            for k, q in enumerate(qs):
                near, far = _search_numpy(
                    q, t, self._masks, self._weights, self._budget, self.radius
                )
                for row, d in zip(near.tolist(), far.tolist(), strict=True):
                    hits[(k, int(t.ids[row]))] = (d, t.words[row])
        elif len(t.ids):
            ks, rows, dist = _KERNEL(
                qs,
                t.words,
                t.order,
                t.low,
                t.offsets,
                STARTS,
                LENGTHS,
                self._masks,
                self._weights,
                self._budget,
                self.radius,
                _BYTE_POP,
            )
            for k, row, d in zip(ks.tolist(), rows.tolist(), dist.tolist(), strict=True):
                hits[(k, int(t.ids[row]))] = (d, t.words[row])
        if len(s.delta_ids):
            for k, q in enumerate(qs):  # one query at a time: the delta may be large
                dd = popcount_distance(s.delta_words, q)
                for j in np.nonzero(dd <= self.radius)[0].tolist():
                    hits[(k, int(s.delta_ids[j]))] = (int(dd[j]), s.delta_words[j])
        result = [
            (k, Hit(e, d, (int(w[0]), int(w[1]), int(w[2]), int(w[3]))))
            for (k, e), (d, w) in hits.items()
            if e not in s.removed
        ]
        result.sort(key=lambda kh: (kh[1].distance, kh[1].entry, kh[0]))
        return result

    def match_any(self, hexes: list[str]) -> list[tuple[int, Hit]]:
        """Best (query number, hit) per entry over several query hashes (e.g. the 8
        dihedral variants of a frame), nearest first; ties go to the first query."""
        return self.match_words(hex_to_words(hexes))

    def match_words(self, queries: np.ndarray) -> list[tuple[int, Hit]]:
        """`match_any` for (Q, 4) words: one search for every query."""
        best: dict[int, tuple[int, Hit]] = {}
        for k, hit in self.query_many(queries):
            have = best.get(hit.entry)
            if have is None or (hit.distance, k) < (have[1].distance, have[0]):
                best[hit.entry] = (k, hit)
        return sorted(best.values(), key=lambda kh: (kh[1].distance, kh[1].entry))

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """(words, ids) of every live entry (a copy), e.g. to rebuild with another radius."""
        return self._live(self._snap)

    @staticmethod
    def _live(s: _Snapshot) -> tuple[np.ndarray, np.ndarray]:
        words = np.concatenate([s.tables.words, s.delta_words])
        ids = np.concatenate([s.tables.ids, s.delta_ids])
        if s.removed:
            keep = ~np.isin(ids, np.fromiter(s.removed, dtype=np.int64))
            words, ids = words[keep], ids[keep]
        return words, ids
