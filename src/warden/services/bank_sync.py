"""Keeping the in-memory bank matcher in step with the bank tables.

The matcher (media/matcher.py) in every `warden serve` process follows the
tables without restarting: new entries are found by id above a watermark (with
an overlap window, because PostgreSQL may commit ids out of order), removals,
re-activations and bank changes by the `hash_events` log, and a periodic count
check reloads any bank whose size in memory disagrees with the table.
`follow_banks` is the background task that runs the refresh under `warden serve`.

With an `index_dir`, the built index is saved there (media/index_file.py) with
the change-log marks it is current to, and `load` opens it memory-mapped and
replays only what the log says changed since, instead of reading every entry
and rebuilding (10 million hashes: ~20 s and a full table scan at every start).
A saved index from another database, with marks ahead of this database's, or
for a bank whose kind changed, is not used; a bank it lacks is read in full.

With a `keypoints` sync, the features of held pictures (the scanner's keypoint
stage, services/keypoint_sync.py) are loaded and refreshed with the banks, so
whatever refreshes the banks (the flag chain, feeds, the follower) refreshes
them too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from pathlib import Path

from warden.config import Settings
from warden.media import index_file
from warden.media.matcher import BankMatcher
from warden.services.keypoint_sync import KeypointSync
from warden.store.banks import BankStore

log = logging.getLogger(__name__)

OVERLAP = 50_000  # ids re-read below the watermark on each refresh
INDEX_FOLDER = "bank-index"  # under `data_dir`


class BankSync:
    """Loads a matcher from the store and keeps it in step (see the module docstring)."""

    def __init__(
        self,
        store: BankStore,
        matcher: BankMatcher,
        *,
        check_every_s: float = 600,
        index_dir: Path | None = None,
        warm: bool = True,
        keypoints: KeypointSync | None = None,
    ) -> None:
        self.store = store
        self.keypoints = keypoints
        self.matcher = matcher
        self.check_every_s = check_every_s
        self.index_dir = index_dir
        self.warm = warm  # load the compiled search kernel (long-lived processes)
        self._entry_mark = 0
        self._event_mark = 0
        self._recent: set[int] = set()  # ids above their bank's `_loaded_below` already applied
        self._seen_events: set[int] = set()
        self._loaded_below: dict[int, int] = {}  # per bank: every live entry up to this id is in
        self._events_below: dict[int, int] = {}  # per bank: events up to this id are in too
        self._checked = 0.0
        self._saved_marks: tuple[int, int] | None = None  # what the saved index is current to
        # refresh/compact/save come from the follower's thread and from feeds applying a
        # pushed batch (services/feeds.py `on_bank_change`): one at a time
        self.lock = threading.RLock()

    @property
    def source(self) -> str:
        """Which database a saved index belongs to (a digest of its URL, no password)."""
        url = self.store.db.engine.url.render_as_string(hide_password=True)
        return hashlib.sha256(url.encode()).hexdigest()[:16]

    def load(self) -> dict[str, int]:
        """Load every bank (from the saved index where it is current); the sizes loaded."""
        if self.warm:
            self.matcher.warm_up()
        entry_mark, event_mark = self.store.update_marker()
        banks = self.store.bank_list()
        saved = self._saved(entry_mark, event_mark)
        self.matcher.set_banks(banks)
        self._recent, self._seen_events, self._loaded_below = set(), set(), {}
        self._events_below = {}
        read_in_full = 0
        changed = self.store.banks_changed_since(saved.event_mark) if saved else set()
        for bank in banks:
            kept = saved.banks.get(bank.id) if saved is not None else None
            if kept is not None and kept.kind == bank.kind.value and bank.id not in changed:
                self.matcher.adopt(bank.id, kept.arrays)  # tables do not depend on the threshold
                self._loaded_below[bank.id] = saved.entry_mark if saved else 0
            else:
                self.matcher.bulk_load(bank.id, self.store.live_values(bank.id))
                self._loaded_below[bank.id] = entry_mark
                if saved is not None:  # the replay from the saved marks must skip its events
                    self._events_below[bank.id] = event_mark
                read_in_full += 1
        self._checked = time.monotonic()
        if saved is not None and read_in_full < len(banks):
            self._entry_mark, self._event_mark = saved.entry_mark, saved.event_mark
            self._saved_marks = (saved.entry_mark, saved.event_mark)
            caught_up = self.refresh()
            log.info("saved bank index opened; %d changes since applied", caught_up)
        else:
            self._entry_mark, self._event_mark = entry_mark, event_mark
        if read_in_full:
            self.save()
        if self.keypoints is not None:
            self.keypoints.load()
        sizes = self.matcher.sizes()
        log.info(
            "hash banks loaded: %s (%d MiB of arrays, %d banks read in full)",
            sizes,
            self.matcher.nbytes() >> 20,
            read_in_full,
        )
        return sizes

    def _saved(self, entry_mark: int, event_mark: int) -> index_file.SavedIndex | None:
        if self.index_dir is None:
            return None
        saved = index_file.read(self.index_dir)
        if saved is None:
            return None
        if saved.source != self.source:
            log.warning("saved bank index %s is another database's; rebuilding", self.index_dir)
            return None
        if saved.entry_mark > entry_mark or saved.event_mark > event_mark:
            log.warning("saved bank index %s is ahead of the database; rebuilding", self.index_dir)
            return None
        return saved

    def compact_and_save(self) -> None:
        """Fold pending changes into the index and save it (under the lock)."""
        with self.lock:
            self.matcher.compact()
            self.save()

    def save(self) -> bool:
        """Save the index (folding pending changes first is the caller's business: with
        changes pending, nothing is saved); whether it was saved. Never raises: a failed
        save only costs the next start its time."""
        if self.index_dir is None:
            return False
        marks = (self._entry_mark, self._event_mark)
        if marks == self._saved_marks:
            return False
        arrays = self.matcher.arrays()
        if arrays is None:
            return False
        kinds = {b.id: b for b in self.matcher.banks()}
        try:
            index_file.write(
                self.index_dir,
                entry_mark=self._entry_mark,
                event_mark=self._event_mark,
                source=self.source,
                banks={
                    i: (kinds[i].kind.value, kinds[i].pdq_threshold, a) for i, a in arrays.items()
                },
            )
        except OSError:
            log.exception("the bank index could not be saved in %s", self.index_dir)
            return False
        self._saved_marks = marks
        return True

    def refresh(self) -> int:
        """Apply what changed since the last load or refresh; the number of changes.
        Safe to call from several threads (one runs at a time)."""
        with self.lock:
            changes = self._refresh()
            if self.keypoints is not None:
                changes += self.keypoints.refresh()
            return changes

    def _refresh(self) -> int:
        # below every bank's `_loaded_below` nothing is new: right after a load the
        # overlap window would only re-read rows the load holds
        floor = min((self._below(b.id) for b in self.matcher.banks()), default=0)
        entries, events = self.store.since(
            max(0, self._entry_mark - OVERLAP, floor), max(0, self._event_mark - 100)
        )
        events = [e for e in events if e[0] not in self._seen_events]
        changes = 0
        if any(op == "bank" for _, _, _, op in events):
            known = {b.id for b in self.matcher.banks()}
            banks = self.store.bank_list()
            self.matcher.set_banks(banks)
            top = max((int(e[0]) for e in entries), default=self._entry_mark)
            for bank in banks:
                if bank.id not in known:
                    self.matcher.bulk_load(bank.id, self.store.live_values(bank.id))
                    # read after `entries`: what they list for this bank is already in
                    self._loaded_below[bank.id] = max(top, self._entry_mark)
            changes += 1
        by_bank: dict[int, list[tuple[int, str]]] = {}
        for entry_id, bank_id, value in entries:
            if entry_id not in self._recent and entry_id > self._below(bank_id):
                by_bank.setdefault(bank_id, []).append((entry_id, value))
                self._recent.add(entry_id)
        last_op: dict[int, tuple[int, str]] = {}
        for event_id, bank_id, entry_id, op in events:  # in id order: the last op wins
            if entry_id is not None and event_id > self._events_below.get(bank_id, 0):
                last_op[entry_id] = (bank_id, op)
        removed: dict[int, list[int]] = {}
        revived = []
        for entry_id, (bank_id, op) in last_op.items():
            in_index = entry_id <= self._below(bank_id) or entry_id in self._recent
            if op == "remove" and in_index:
                removed.setdefault(bank_id, []).append(entry_id)
            elif op == "add" and in_index:
                revived.append(entry_id)
        back: dict[int, list[tuple[int, str]]] = {}
        for entry_id, bank_id, value in self.store.entry_values(revived) if revived else []:
            back.setdefault(bank_id, []).append((entry_id, value))
        for bank_id, items in by_bank.items():
            self.matcher.add(bank_id, items)
            changes += len(items)
        for bank_id, items in back.items():  # may already be in: a replay, an overlap
            self.matcher.revive(bank_id, items)
            changes += len(items)
        for bank_id, ids in removed.items():
            self.matcher.remove(bank_id, ids)
            changes += len(ids)
        if entries:
            self._entry_mark = max(self._entry_mark, int(entries[-1][0]))
        if events:
            self._event_mark = max(self._event_mark, max(int(e[0]) for e in events))
        self._seen_events.update(int(e[0]) for e in events)
        self._seen_events = {i for i in self._seen_events if i > self._event_mark - 100}
        self._recent = {i for i in self._recent if i > self._entry_mark - OVERLAP}
        if time.monotonic() - self._checked > self.check_every_s:
            changes += self._check_counts()
        return changes

    def _below(self, bank_id: int) -> int:
        return self._loaded_below.get(bank_id, 0)

    def _check_counts(self) -> int:
        self._checked = time.monotonic()
        counts = self.store.live_counts()
        sizes = {b.id: self.matcher.size(b.id) for b in self.matcher.banks()}
        fixed = 0
        for bank_id, size in sizes.items():
            if counts.get(bank_id, 0) != size:
                log.warning(
                    "bank %s: %d entries in memory, %d in the table; reloading",
                    bank_id,
                    size,
                    counts.get(bank_id, 0),
                )
                self.matcher.bulk_load(bank_id, self.store.live_values(bank_id))
                fixed += 1
        return fixed


def bank_sync(
    settings: Settings,
    store: BankStore,
    matcher: BankMatcher,
    *,
    warm: bool = True,
    keypoints: KeypointSync | None = None,
) -> BankSync:
    """The sync `warden serve` and `warden hashes match` use: saving its index in
    `data_dir`, so each start opens it instead of rebuilding it. `warm=False` for a
    one-shot process: its few queries run in NumPy, without importing numba."""
    return BankSync(
        store,
        matcher,
        index_dir=settings.data_dir / INDEX_FOLDER,
        warm=warm,
        keypoints=keypoints,
    )


async def follow_banks(sync: BankSync, settings: Settings, stop: asyncio.Event) -> None:
    """Pick up bank changes every `banks.refresh_s`; rebuild the index off the request
    path when enough changed, and save it then. A failing database keeps the banks in
    force. Stops between refreshes, never in the middle of one (its thread holds a
    connection)."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), settings.banks.refresh_s)
            return
        except TimeoutError:
            pass
        try:
            await asyncio.to_thread(sync.refresh)
            if sync.matcher.pending >= settings.banks.compact_after:
                await asyncio.to_thread(sync.compact_and_save)
        except Exception:
            log.exception("hash banks could not be refreshed; the loaded banks stay in force")
