"""Banks in the database (SQLite and PostgreSQL), and a matcher following them."""

from __future__ import annotations

import random

import pytest

from warden.domain.banks import BankAction, BankKind
from warden.domain.verdict import FrameHash
from warden.errors import StoreError
from warden.media.matcher import BankMatcher
from warden.services.bank_sync import BankSync
from warden.store import bank_import
from warden.store.banks import BankStore, NewEntry


def _pdq(seed: int) -> str:
    return random.Random(seed).getrandbits(256).to_bytes(32, "big").hex()


def _near(value: str, bits: int) -> str:
    n = int(value, 16)
    for b in range(bits):
        n ^= 1 << (b * 7)
    return n.to_bytes(32, "big").hex()


def _frames(value: str) -> tuple[FrameHash, ...]:
    return (FrameHash(0, value, 100),)


@pytest.fixture
def store(database):
    database.upgrade()
    return BankStore(database)


def test_banks_hold_entries_with_provenance(store):
    store.create_bank("ncmec", BankKind.PDQ, csam=True, description="industry list")
    result = store.add(
        "ncmec",
        [NewEntry(_pdq(1), "import a.csv", "alice", "seen in attack"), NewEntry(_pdq(2))],
    )
    assert (result.added, result.existing) == (2, 0)
    again = store.add("ncmec", [NewEntry(_pdq(1).upper())])  # same hash, other spelling
    assert (again.added, again.existing) == (0, 1)
    [(bank, count)] = store.banks()
    assert bank.csam and bank.action is BankAction.REJECT and count == 2
    first = next(store.entries("ncmec"))
    assert (first.value, first.source, first.added_by, first.reason) == (
        _pdq(1),
        "import a.csv",
        "alice",
        "seen in attack",
    )


def test_bad_input_is_refused_with_the_reason(store):
    store.create_bank("exact", BankKind.SHA256)
    with pytest.raises(ValueError, match="64 hex digits"):
        store.add("exact", [NewEntry("abc")])
    with pytest.raises(StoreError, match="no bank named 'nope'"):
        store.add("nope", [NewEntry(_pdq(1))])
    with pytest.raises(StoreError, match="already exists"):
        store.create_bank("exact", BankKind.SHA256)
    with pytest.raises(ValueError, match="csam bank must reject"):
        store.create_bank("x", BankKind.PDQ, action=BankAction.REVIEW, csam=True)
    with pytest.raises(ValueError, match="bank name"):
        store.create_bank("Has Spaces", BankKind.PDQ)


def test_removal_keeps_the_record_and_readding_restores(store):
    store.create_bank("b", BankKind.PDQ)
    store.add("b", [NewEntry(_pdq(1), reason="first")])
    assert store.remove("b", [_pdq(1)], by="bob", reason="false positive") == 1
    assert list(store.entries("b")) == []
    [kept] = list(store.entries("b", include_removed=True))
    assert kept.reason == "first"
    restored = store.add("b", [NewEntry(_pdq(1))])
    assert restored.reactivated == 1 and [e.id for e in store.entries("b")] == [kept.id]


def test_a_matcher_follows_adds_removes_and_bank_changes(store):
    bank = store.create_bank("live", BankKind.PDQ)
    matcher = BankMatcher()
    sync = BankSync(store, matcher)
    store.add("live", [NewEntry(_pdq(1))])
    sync.load()
    assert [m.entry_id for m in matcher.match("", _frames(_near(_pdq(1), 5)))] != []

    store.add("live", [NewEntry(_pdq(2))])
    assert matcher.match("", _frames(_pdq(2))) == []  # not yet seen
    assert sync.refresh() >= 1
    assert [m.value for m in matcher.match("", _frames(_pdq(2)))] == [_pdq(2)]

    store.remove("live", [_pdq(1)], by="t", reason="t")
    sync.refresh()
    assert matcher.match("", _frames(_pdq(1))) == []
    store.add("live", [NewEntry(_pdq(1))])  # restored
    sync.refresh()
    assert len(matcher.match("", _frames(_pdq(1)))) == 1

    near = _near(_pdq(2), 20)
    assert len(matcher.match("", _frames(near))) == 1
    store.update_bank("live", pdq_threshold=10)
    sync.refresh()
    assert matcher.match("", _frames(near)) == []
    assert matcher.banks()[0].pdq_threshold == 10

    store.create_bank("exact", BankKind.SHA256)
    store.add("exact", [NewEntry("ab" * 32)])
    sync.refresh()
    assert [m.bank.name for m in matcher.match("ab" * 32, ())] == ["exact"]
    store.delete_bank("exact")
    sync.refresh()
    assert matcher.match("ab" * 32, ()) == [] and [b.id for b in matcher.banks()] == [bank.id]
    matcher.compact()
    assert matcher.pending == 0 and matcher.size(bank.id) == 2


def test_entries_added_and_removed_between_refreshes_leave_no_trace(store):
    store.create_bank("b", BankKind.PDQ)
    matcher = BankMatcher()
    sync = BankSync(store, matcher, check_every_s=0)
    sync.load()
    store.add("b", [NewEntry(_pdq(7))])
    store.remove("b", [_pdq(7)], by="t", reason="t")
    sync.refresh()
    assert matcher.match("", _frames(_pdq(7))) == []
    assert matcher.sizes() == {"b": 0}


def test_count_check_repairs_a_matcher_that_missed_entries(store):
    bank = store.create_bank("b", BankKind.PDQ)
    matcher = BankMatcher()
    sync = BankSync(store, matcher, check_every_s=0)
    sync.load()
    store.add("b", [NewEntry(_pdq(i)) for i in range(3)])
    sync._entry_mark += 10**6  # as if the ids had committed out of order, below the window
    sync.refresh()
    assert matcher.size(bank.id) == 3
    assert len(matcher.match("", _frames(_pdq(2)))) == 1


def test_add_many_counts_repeats_existing_and_restored(store, monkeypatch):
    """The import path (`add_many`): a repeat inside a chunk is one entry with the last
    reason, values already there are counted as such, removed ones come back (with
    their `add` event for the matchers), across several transactions; a bad value is
    refused by name."""
    monkeypatch.setattr(bank_import, "IMPORT_CHUNK", 4)  # several transactions
    store.create_bank("imp", BankKind.PDQ)
    values = [_pdq(k) for k in range(10)]
    store.add("imp", [NewEntry(values[0]), NewEntry(values[1])])
    store.remove("imp", [values[1]], by="t", reason="t")
    batch = [values[2], values[0], values[2], values[1], *(v.upper() for v in values[3:])]
    reasons = [f"r{k}" for k in range(len(batch))]
    result = store.add_many("imp", batch, reasons, source="import x", added_by="t")
    assert (result.added, result.reactivated, result.existing) == (8, 1, 1)
    live = {e.value: e for e in store.entries("imp")}
    assert set(live) == set(values)
    assert live[values[3]].source == "import x" and live[values[3]].reason == "r4"
    assert live[values[2]].reason == "r2"  # the last line of the chunk
    matcher = BankMatcher()
    BankSync(store, matcher).load()
    assert matcher.match("", _frames(values[1]))  # restored, and the matcher sees it
    with pytest.raises(ValueError, match="zz"):
        store.add_many("imp", [_pdq(50), "zz" * 32], ["", ""], source="s", added_by="t")


def _import_state(store, bank):
    """(value, source, reason) of every live entry, and the bank's change-log ops."""
    bank_id = store.bank(bank).id
    entries = sorted((e.value, e.source, e.reason) for e in store.entries(bank))
    _, events = store.since(0, 0)
    return entries, sorted(op for _, b, _, op in events if b == bank_id)


def test_import_into_a_bank_that_never_removed_matches_the_staged_merge(store, monkeypatch):
    """A bank that never removed an entry takes the direct path (PostgreSQL: COPY
    straight into the table; SQLite: one executemany); one that did takes the
    staging table. The same import into each gives the same entries, provenance,
    counts and change-log events: repeats within and across chunks, values there
    before (which keep their first provenance), upper-case input, a reason with
    tabs, backslashes and line breaks."""
    monkeypatch.setattr(bank_import, "IMPORT_CHUNK", 4)  # several transactions
    values = [_pdq(100 + k) for k in range(12)]
    batch = [values[0], values[5], values[1], values[0], values[6], values[2], values[5]]
    batch += [v.upper() for v in values[3:]]
    reasons = [f"r{k}" for k in range(len(batch))]
    reasons[13] = "a\ttab, a\\backslash\nand\r\nlines"  # escaped in COPY's text format
    outcomes = []
    for bank, removes in (("direct", False), ("staged", True)):
        store.create_bank(bank, BankKind.PDQ)
        store.add(bank, [NewEntry(values[4], "before", "t", "first"), NewEntry(_pdq(999))])
        if removes:  # an unrelated removal: this bank's imports go through the staging table
            store.remove(bank, [_pdq(999)], by="t", reason="t")
        result = store.add_many(bank, batch, reasons, source="list", added_by="t")
        counts = (result.added, result.reactivated, result.existing)
        entries, events = _import_state(store, bank)
        outcomes.append((counts, [e for e in entries if e[0] != _pdq(999)], events))
    (direct_counts, direct_entries, direct_events), outcome = outcomes
    staged_counts, staged_entries, staged_events = outcome
    assert direct_counts == staged_counts == (11, 0, 4)  # 15 distinct per chunk
    assert direct_entries == staged_entries
    assert [e[0] for e in direct_entries] == sorted(values)
    assert (values[4], "before", "first") in direct_entries  # not overwritten
    assert (values[9], "list", reasons[13]) in direct_entries
    # new entries need no event (the followers see them by id): the bank's own only
    assert (direct_events, staged_events) == (["bank"], ["bank", "remove"])


def test_direct_copy_that_meets_a_present_value_falls_back_to_the_merge(store, monkeypatch):
    """The direct path looks up a sample of the chunk; a value there that the sample
    missed makes the unique index refuse the COPY (PostgreSQL), and the chunk is
    merged through the staging table instead: nothing lost, nothing doubled, the
    present entry untouched, and a matcher sees every value."""
    monkeypatch.setattr(bank_import, "PROBE_SAMPLE", 1)  # only the first and last value
    store.create_bank("fb", BankKind.PDQ)
    values = sorted(_pdq(200 + k) for k in range(7))
    store.add("fb", [NewEntry(values[3], "before", "t", "first")])  # the middle of the chunk
    result = store.add_many("fb", values, ["new"] * 7, source="list", added_by="t")
    assert (result.added, result.reactivated, result.existing) == (6, 0, 1)
    entries = {e.value: e for e in store.entries("fb")}
    assert sorted(entries) == values
    assert entries[values[3]].reason == "first" and entries[values[0]].reason == "new"
    matcher = BankMatcher()
    BankSync(store, matcher).load()
    assert all(matcher.match("", _frames(v)) for v in values)


def test_import_keeps_a_provenance_that_needs_escaping(store):
    """One source, author and reason for a whole list (the usual import) holding a
    tab, a backslash and line breaks: stored as given, on each backend (PostgreSQL's
    direct COPY writes it in COPY's text format, escaped)."""
    store.create_bank("esc", BankKind.PDQ)
    values = [_pdq(300 + k) for k in range(5)]
    source, by, reason = "file\twith tab", "dom\\user", "line one\r\nline two"
    result = store.add_many("esc", values, [reason] * 5, source=source, added_by=by)
    assert (result.added, result.reactivated, result.existing) == (5, 0, 0)
    entries = sorted((e.value, e.source, e.added_by, e.reason) for e in store.entries("esc"))
    assert entries == sorted((v, source, by, reason) for v in values)
