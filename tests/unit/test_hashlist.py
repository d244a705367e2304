"""The PDQ index against brute-force popcount: identical result sets, boundaries included;
and the hash-list files `warden hashes import` reads (adapters/hash_exchange)."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pytest

from warden.adapters.hash_exchange import read
from warden.errors import HashFileError
from warden.media import index_file
from warden.media.hashlist import PdqIndex, hex_to_words, popcount_distance, words_to_hex

rng = np.random.default_rng(11)


def _flip(word: np.ndarray, bits: int) -> np.ndarray:
    out = word.copy()
    for b in rng.choice(256, bits, replace=False):
        out[b // 64] ^= np.uint64(1) << np.uint64(63 - b % 64)
    return out


def _random(n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, (n, 4), dtype=np.uint64, endpoint=True)


def test_hex_round_trip():
    words = _random(5)
    assert (hex_to_words(words_to_hex(words)) == words).all()
    with pytest.raises(ValueError, match="64 hex digits"):
        hex_to_words(["abcd"])


def test_index_equals_brute_force_including_31_and_32():
    base = _random(20_000)
    planted, expected_far = [], []
    queries = []
    for _ in range(60):
        q = _random(1)[0]
        queries.append(q)
        for d in (0, 1, 15, 30, 31):
            planted.append(_flip(q, d))
        for d in (32, 33, 40):
            expected_far.append(_flip(q, d))
    words = np.concatenate([base, np.array(planted), np.array(expected_far)])
    index = PdqIndex.from_words(words, np.arange(len(words)))
    for q in queries:
        got = sorted((h.entry, h.distance) for h in index.query_words(q))
        dist = popcount_distance(words, q)
        want = sorted((int(i), int(dist[i])) for i in np.nonzero(dist <= 31)[0])
        assert got == want
        assert {d for _, d in got} >= {0, 1, 15, 30, 31}
        assert all(d <= 31 for _, d in got)


@pytest.mark.parametrize("radius", [0, 8, 20, 40])
def test_other_radii_are_exact_too(radius):
    words = _random(5_000)
    q = words[17]
    near = np.array([_flip(q, d) for d in range(0, 45, 3)])
    all_words = np.concatenate([words, near])
    index = PdqIndex.from_words(all_words, np.arange(len(all_words)), radius=radius)
    got = sorted(h.entry for h in index.query_words(q))
    assert got == sorted(np.nonzero(popcount_distance(all_words, q) <= radius)[0].tolist())


def test_add_remove_and_compact():
    index = PdqIndex()
    words = _random(30)
    hexes = words_to_hex(words)
    index.add(hexes[:5], list(range(5)))
    index.compact()  # folded into the tables
    index.add(hexes[5:], list(range(5, 30)))  # stays in the delta
    assert len(index) == 30 and index.pending == 25
    assert [h.entry for h in index.query(hexes[7])] == [7]
    index.remove([7])
    assert index.query(hexes[7]) == []
    index.compact()
    assert index.query(hexes[7]) == [] and len(index) == 29 and index.pending == 0
    near = words_to_hex(np.array([_flip(words[3], 12)]))[0]
    assert [(h.entry, h.distance) for h in index.query(near)] == [(3, 12)]


def test_queries_are_safe_while_another_thread_adds_and_compacts():
    index = PdqIndex()
    words = _random(2_000)
    hexes = words_to_hex(words)
    index.add(hexes[:100], list(range(100)))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(300):
                assert [h.entry for h in index.query(hexes[3])] == [3]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(100, 2_000, 50):
        index.add(hexes[start : start + 50], list(range(start, start + 50)))
        if start % 500 == 0:
            index.compact()
    for t in threads:
        t.join()
    assert errors == []
    assert len(index) == 2_000


def test_match_any_keeps_the_best_distance_per_entry():
    words = _random(100)
    index = PdqIndex.from_words(words, np.arange(100))
    queries = words_to_hex(np.array([_flip(words[4], 20), _flip(words[4], 3)]))
    assert [(k, h.entry, h.distance) for k, h in index.match_any(queries)] == [(1, 4, 3)]


PDQ_HEX = "f" * 64


def test_a_csv_field_over_the_csv_limit_is_a_hash_file_error_naming_its_line() -> None:
    """Found by fuzzing (regressions/hashlist): csv.Error is not a ValueError, so it
    escaped `warden hashes import`; the lines before it are still read, and the import
    keeps them (tests/cli/test_hashes_cli.py: a bad line keeps what came before)."""
    huge = "a" * (csv.field_size_limit() + 1)
    text = f"hash,kind,bank,note\n{PDQ_HEX},pdq,known,\n\n{huge},pdq,known,\n{PDQ_HEX},pdq,,\n"
    lines = read(io.StringIO(text, newline=None), "csv")
    assert next(lines).line == 2
    with pytest.raises(HashFileError, match=r"^line 4: not readable as CSV: field larger"):
        next(lines)
    with pytest.raises(HashFileError, match=r"^line 1: not readable as CSV"):
        list(read(io.StringIO(huge), "csv"))


def test_hash_file_lines_are_the_lines_an_editor_shows() -> None:
    text = f'hash,kind\n"{PDQ_HEX}",pdq\n"note\nspanning",pdq\n'
    lines = read(io.StringIO(text, newline=None), "csv")
    assert next(lines).line == 2
    with pytest.raises(HashFileError, match=r"^line 3: pdq hash must be 64 hex digits"):
        next(lines)


def test_a_hash_file_that_is_not_utf8_is_a_hash_file_error() -> None:
    for fmt in ("csv", "te"):
        raw = (
            f"hash,kind\n{PDQ_HEX},pdq\n".encode() if fmt == "csv" else f"pdq {PDQ_HEX}\n".encode()
        )
        stream = io.TextIOWrapper(io.BytesIO(raw + b"\xff\xfe\n" * 3000), encoding="utf-8")
        with pytest.raises(HashFileError, match="line"):
            list(read(stream, fmt))


def test_saved_tables_answer_exactly_like_brute_force(tmp_path):
    """The index written by media/index_file and opened memory-mapped, read-only, finds
    exactly what a popcount over every row finds (distances 31 and 32 included)."""
    base = _random(30_000)
    queries = [_flip(base[i], d) for i, d in zip(range(0, 3000, 100), range(0, 40), strict=False)]
    queries += [_random(1)[0] for _ in range(10)]
    ids = np.arange(5, 30_005, dtype=np.int64)
    built = PdqIndex.from_words(base, ids)
    arrays = built.arrays()
    assert arrays is not None
    index_file.write(
        tmp_path / "idx", entry_mark=1, event_mark=2, source="s", banks={7: ("pdq", 31, arrays)}
    )
    saved = index_file.read(tmp_path / "idx")
    assert saved is not None and (saved.entry_mark, saved.event_mark) == (1, 2)
    mapped = saved.banks[7].arrays
    assert isinstance(mapped["words"], np.memmap) and not mapped["words"].flags.writeable
    for radius in (31, 20):
        index = PdqIndex.from_arrays(mapped, radius=radius)
        for q in queries:
            brute = np.nonzero(popcount_distance(base, q) <= radius)[0]
            got = index.query_words(q)
            assert sorted(h.entry for h in got) == sorted(ids[brute].tolist())
            for h in got:
                assert h.distance == int(popcount_distance(base[h.entry - 5][None, :], q)[0])


def test_saved_tables_that_do_not_fit_are_refused():
    arrays = PdqIndex.from_words(_random(100), np.arange(100)).arrays()
    assert arrays is not None
    with pytest.raises(ValueError, match="do not fit"):
        PdqIndex.from_arrays(arrays | {"ids": arrays["ids"][:50]})
    assert PdqIndex.from_words(_random(3), np.arange(3)).arrays() is not None
    index = PdqIndex.from_words(_random(3), np.arange(3))
    index.remove([1])
    assert index.arrays() is None  # pending changes are never saved


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
def test_both_searches_equal_brute_force(compiled):
    """The NumPy search (one-shot processes) and the numba kernel (`warden serve`) find
    exactly what a popcount over every row finds, radius boundaries included."""
    base = _random(40_000)
    ids = np.arange(40_000, dtype=np.int64)
    for radius in (31, 22, 43):
        index = PdqIndex.from_words(base, ids, radius=radius)
        for k in range(0, 48):
            q = _flip(base[k * 37], k) if k < 46 else _random(1)[0]
            brute = np.nonzero(popcount_distance(base, q) <= radius)[0]
            got = index.query_words(q, compiled=compiled)
            assert sorted(h.entry for h in got) == brute.tolist()
            assert all(
                h.distance == int(popcount_distance(base[h.entry][None, :], q)[0]) for h in got
            )
