"""Big banks (issue 16): the set-based import, and the saved index a start opens instead
of rebuilding — always answering exactly what the tables hold, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from warden.domain.banks import BankKind
from warden.domain.verdict import FrameHash
from warden.errors import BadHash
from warden.media.hashlist import hex_to_words, popcount_distance
from warden.media.matcher import BankMatcher
from warden.services.bank_sync import BankSync
from warden.store import bank_import
from warden.store.banks import BankStore, NewEntry

rng = np.random.default_rng(5)


def _hexes(n: int) -> list[str]:
    return [bytes(r).hex() for r in rng.integers(0, 256, (n, 32), dtype=np.uint8)]


def _flip(value: str, bits: int) -> str:
    n = int(value, 16)
    for b in rng.choice(256, bits, replace=False):
        n ^= 1 << int(b)
    return n.to_bytes(32, "big").hex()


@pytest.fixture
def store(database):
    return BankStore(database)


def _brute(store: BankStore, bank: str, query: str, radius: int = 31) -> set[int]:
    """Entry ids within `radius` of `query` among the bank's live rows, by popcount."""
    live = [(e.id, e.value) for e in store.entries(bank)]
    if not live:
        return set()
    words = hex_to_words([v for _, v in live])
    near = popcount_distance(words, hex_to_words([query])[0]) <= radius
    return {live[i][0] for i in np.nonzero(near)[0].tolist()}


def _found(matcher: BankMatcher, query: str) -> set[int]:
    return {
        m.entry_id
        for m in matcher.match("", (FrameHash(0, query, 100),))
        if m.variant == "original"
    }


# -- import ----------------------------------------------------------------------


def test_import_dedupes_in_sql_keeps_the_last_provenance_and_counts(store, monkeypatch):
    monkeypatch.setattr(bank_import, "IMPORT_CHUNK", 7)  # several transactions
    store.create_bank("b", BankKind.PDQ)
    values = _hexes(20)
    lines = [NewEntry(v, "file", "alice", "first") for v in values]
    lines.insert(3, NewEntry(values[0].upper(), "file", "bob", "again"))  # same chunk, later
    result = store.add("b", lines)
    assert (result.added, result.existing, result.reactivated) == (20, 0, 0)
    kept = {e.value: e for e in store.entries("b")}
    assert set(kept) == set(values)
    assert (kept[values[0]].added_by, kept[values[0]].reason) == ("bob", "again")

    store.remove("b", values[:2], by="t", reason="t")
    again = store.add("b", [NewEntry(v) for v in values[:10]] + [NewEntry(_hexes(1)[0])])
    assert (again.added, again.existing, again.reactivated) == (1, 8, 2)
    assert len(list(store.entries("b"))) == 21


def test_import_returns_every_id_when_asked(store):
    store.create_bank("b", BankKind.SHA256)
    first = store.add("b", [NewEntry("ab" * 32)], keep_ids=True)
    both = store.add("b", [NewEntry("ab" * 32), NewEntry("cd" * 32)], keep_ids=True)
    assert set(first.entry_ids) < set(both.entry_ids) and len(both.entry_ids) == 2
    assert {e.id for e in store.entries("b")} == set(both.entry_ids)


def test_a_bad_hash_is_named_and_the_chunks_before_it_are_kept(store, monkeypatch):
    monkeypatch.setattr(bank_import, "IMPORT_CHUNK", 5)
    store.create_bank("b", BankKind.PDQ)
    lines = [NewEntry(v) for v in _hexes(12)] + [NewEntry("nothex")]
    with pytest.raises(BadHash, match="pdq hash must be 64 hex digits, got 'nothex'"):
        store.add("b", lines)
    assert len(list(store.entries("b"))) == 10  # two full chunks committed


# -- the saved index ----------------------------------------------------------------


def test_a_start_opens_the_saved_index_and_replays_the_changes_since(store, tmp_path):
    folder = tmp_path / "bank-index"
    store.create_bank("big", BankKind.PDQ)
    store.create_bank("exact", BankKind.SHA256)
    values = _hexes(3000)
    store.add("big", [NewEntry(v) for v in values])
    store.add("exact", [NewEntry("ab" * 32)])
    first = BankSync(store, BankMatcher(), index_dir=folder)
    first.load()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}

    # changes the saved index does not hold: adds, removes, a revival, a new bank
    store.remove("big", values[:5], by="t", reason="t")
    store.add("big", [NewEntry(values[0])])  # revived
    extra = _hexes(50)
    store.add("big", [NewEntry(v) for v in extra])
    store.create_bank("late", BankKind.PDQ)
    store.add("late", [NewEntry(extra[0])])
    store.delete_bank("exact")

    matcher = BankMatcher()
    BankSync(store, matcher, index_dir=folder).load()
    tables = matcher._banks[store.bank("big").id].pdq._snap.tables  # opened, not rebuilt
    assert isinstance(tables.words, np.memmap)
    assert matcher.sizes() == {"big": 3000 - 4 + 50, "late": 1}
    assert matcher.match("ab" * 32, ()) == []
    for q in [
        values[0],
        values[1],
        extra[0],
        *(_flip(v, d) for v, d in zip(values[5:45], range(40), strict=True)),
    ]:
        assert _found(matcher, q) == _brute(store, "big", q) | _brute(store, "late", q)


def test_a_saved_index_that_is_not_this_databases_is_not_used(store, tmp_path, database):
    folder = tmp_path / "bank-index"
    store.create_bank("big", BankKind.PDQ)
    values = _hexes(200)
    store.add("big", [NewEntry(v) for v in values])
    BankSync(store, BankMatcher(), index_dir=folder).load()
    # the database is rebuilt from scratch (marks start again): the saved index is ahead
    store.delete_bank("big")
    store.create_bank("big2", BankKind.PDQ)
    other = _hexes(3)
    store.add("big2", [NewEntry(v) for v in other])
    matcher = BankMatcher()
    BankSync(store, matcher, index_dir=folder).load()
    assert matcher.sizes() == {"big2": 3}
    assert _found(matcher, values[0]) == set() and len(_found(matcher, other[0])) == 1


@pytest.mark.parametrize("damage", ["manifest", "truncated", "missing"])
def test_a_damaged_saved_index_is_rebuilt_never_trusted(store, tmp_path, damage):
    folder = tmp_path / "bank-index"
    store.create_bank("big", BankKind.PDQ)
    values = _hexes(500)
    store.add("big", [NewEntry(v) for v in values])
    BankSync(store, BankMatcher(), index_dir=folder).load()
    words = next(folder.glob("*-words.npy"))
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json")
    elif damage == "truncated":
        os.truncate(words, words.stat().st_size // 2)
    else:
        words.unlink()
    matcher = BankMatcher()
    BankSync(store, matcher, index_dir=folder).load()
    assert matcher.sizes() == {"big": 500}
    q = _flip(values[7], 10)
    assert _found(matcher, q) == _brute(store, "big", q) and _found(matcher, q)


def test_a_rebuild_is_saved_and_the_next_start_opens_it(store, tmp_path):
    """What `follow_banks` does after a compaction: the saved index moves to the new
    marks, so the next start replays nothing old."""
    folder = tmp_path / "bank-index"
    store.create_bank("big", BankKind.PDQ)
    store.add("big", [NewEntry(v) for v in _hexes(100)])
    matcher = BankMatcher()
    sync = BankSync(store, matcher, index_dir=folder)
    sync.load()
    more = _hexes(30)
    store.add("big", [NewEntry(v) for v in more])
    sync.refresh()
    assert sync.save() is False  # changes pending: never saved half-folded
    matcher.compact()
    assert sync.save() is True and sync.save() is False  # nothing new the second time
    fresh = BankMatcher()
    BankSync(store, fresh, index_dir=folder).load()
    assert fresh.sizes() == {"big": 130} and fresh.pending == 0
    assert _found(fresh, more[-1]) == _brute(store, "big", more[-1]) != set()


def test_a_bank_deleted_and_made_again_is_read_in_full(store, tmp_path):
    """SQLite may give a new bank the id of a deleted one: its saved arrays are not it."""
    folder = tmp_path / "bank-index"
    store.create_bank("a", BankKind.PDQ)
    old = _hexes(50)
    store.add("a", [NewEntry(v) for v in old])
    BankSync(store, BankMatcher(), index_dir=folder).load()
    store.delete_bank("a")
    store.create_bank("a", BankKind.PDQ)
    new = _hexes(2)
    store.add("a", [NewEntry(v) for v in new])
    matcher = BankMatcher()
    BankSync(store, matcher, index_dir=folder).load()
    assert matcher.sizes() == {"a": 2}
    assert _found(matcher, old[0]) == set() and len(_found(matcher, new[0])) == 1
