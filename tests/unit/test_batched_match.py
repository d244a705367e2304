"""All of a file's hashes asked of a PDQ bank in one search (issue 12): the eight
orientations of every frame and Warden's robust hashes go to the compiled kernel in
one call, and the answer is exactly what a popcount over every entry finds per hash,
best per entry (least distance, then the first frame and orientation asked)."""

from __future__ import annotations

import numpy as np
import pytest

from warden.domain.banks import Bank, BankAction, BankKind
from warden.domain.verdict import FrameHash
from warden.media import hashlist
from warden.media.hashing import DIHEDRAL
from warden.media.hashlist import PdqIndex, popcount_distance, words_to_hex
from warden.media.matcher import BankMatcher

rng = np.random.default_rng(12)


def _random(n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, (n, 4), dtype=np.uint64, endpoint=True)


def _flip(word: np.ndarray, bits: int) -> np.ndarray:
    out = word.copy()
    for b in rng.choice(256, bits, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def _brute(words: np.ndarray, ids: np.ndarray, q: np.ndarray, radius: int) -> set[tuple[int, int]]:
    dist = popcount_distance(words, q)
    return {(int(ids[i]), int(dist[i])) for i in np.nonzero(dist <= radius)[0]}


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_one_search_for_many_queries_is_brute_force_for_each(compiled: bool) -> None:
    """Twelve queries in one call, each with entries planted at 0..33 bits (31 and 32
    included), plus entries still in the delta and one removed: per query, exactly
    the (entry, distance) pairs a popcount over every live entry finds."""
    queries = _random(12)
    planted = [_flip(q, d) for q in queries for d in (0, 1, 9, 30, 31, 32, 33)]
    base = np.concatenate([_random(30_000), np.array(planted[: len(planted) // 2])])
    later = np.array(planted[len(planted) // 2 :])
    for radius in (31, 20):
        index = PdqIndex.from_words(base, np.arange(len(base)), radius=radius)
        index.add(words_to_hex(later), list(range(len(base), len(base) + len(later))))
        gone = len(base) - 1
        index.remove([gone])
        words = np.concatenate([base, later])
        ids = np.arange(len(words))
        live = ids != gone
        got: dict[int, set[tuple[int, int]]] = {k: set() for k in range(len(queries))}
        for k, hit in index.query_many(queries, compiled=compiled):
            got[k].add((hit.entry, hit.distance))
        for k, q in enumerate(queries):
            assert got[k] == _brute(words[live], ids[live], q, radius), (radius, k)
        assert any(got.values())


def test_a_search_that_finds_more_than_its_first_buffers_grows_them() -> None:
    """Hundreds of hits for one call (the kernel answers -1, the buffers grow, it is
    asked again): still every hit, once."""
    q = _random(1)[0]
    near = np.array([_flip(q, int(d)) for d in rng.integers(0, 31, 900)])
    words = np.concatenate([_random(5_000), near])
    index = PdqIndex.from_words(words, np.arange(len(words)))
    hits = index.query_many(np.stack([q, q]), compiled=True)
    want = _brute(words, np.arange(len(words)), q, 31)
    assert len(want) >= 900
    for k in (0, 1):
        assert {(h.entry, h.distance) for kk, h in hits if kk == k} == want


def test_the_matcher_asks_every_hash_of_a_file_in_one_search(monkeypatch) -> None:
    """Two frames with their eight orientations, a robust hash and a frame below the
    bank's quality floor: one kernel call per bank, and per entry the best match over
    what may be asked (least distance; ties to the first frame and orientation)."""
    bank = Bank(1, "known", BankKind.PDQ, BankAction.REJECT, min_quality=50)
    entries = _random(40_000)
    frame0, frame3, robust, dull = _random(8), _random(8), _random(1), _random(8)
    near = {
        100: _flip(frame0[2], 7),  # rotate180 of frame 0
        101: _flip(frame3[5], 4),  # flipy of frame 3
        102: _flip(robust[0], 11),  # the robust hash ("original" of frame 0)
        103: _flip(dull[0], 0),  # only near a frame too flat to be asked
        104: frame3[1].copy(),  # rotate90 of frame 3 exactly ...
    }
    entries[list(near)] = np.array(list(near.values()))
    matcher = BankMatcher()
    matcher.set_banks([bank])
    matcher.bulk_load(1, list(enumerate(words_to_hex(entries))))
    BankMatcher.warm_up()

    def frame(no: int, words: np.ndarray, quality: int) -> FrameHash:
        hexes = words_to_hex(words)
        return FrameHash(no, hexes[0], quality, tuple(hexes[1:]))

    frames = [
        frame(0, frame0, 90),
        frame(3, frame3, 80),
        frame(5, dull, 10),
        FrameHash(0, words_to_hex(robust)[0], 70),
    ]
    calls = []
    kernel = hashlist._KERNEL
    monkeypatch.setattr(
        hashlist,
        "_KERNEL",
        lambda queries, *rest: calls.append(len(queries)) or kernel(queries, *rest),
    )
    found = matcher.match("", frames)
    assert calls == [8 + 8 + 1]  # one call: the flat frame is not asked

    asked = [
        (f.frame, k, w)
        for f, ws in ((frames[0], frame0), (frames[1], frame3))
        for k, w in enumerate(ws)
    ]
    asked.append((0, 0, robust[0]))
    want = {}
    for entry, value in enumerate(entries):
        best = None
        for order, (no, k, q) in enumerate(asked):
            d = int(popcount_distance(value[None, :], q)[0])
            if d <= bank.pdq_threshold and (best is None or (d, order) < best[0]):
                best = ((d, order), (entry, d, no, DIHEDRAL[k]))
        if best is not None:
            want[entry] = best[1]
    assert {(m.entry_id, m.distance, m.frame, m.variant) for m in found} == set(want.values())
    by_entry = {m.entry_id: m for m in found}
    assert (by_entry[100].frame, by_entry[100].variant, by_entry[100].distance) == (
        0,
        "rotate180",
        7,
    )
    assert (by_entry[101].frame, by_entry[101].variant) == (3, "flipy")
    assert (by_entry[102].frame, by_entry[102].variant, by_entry[102].distance) == (
        0,
        "original",
        11,
    )
    assert (by_entry[104].frame, by_entry[104].variant, by_entry[104].distance) == (
        3,
        "rotate90",
        0,
    )
    assert 103 not in by_entry
