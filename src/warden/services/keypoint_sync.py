"""Keeping the scanner's keypoint stage in step with the stored features.

The features of held pictures (store/keypoint_features.py) are loaded into the
`KeypointStage` (media/keypoint_stage.py) when `warden serve` starts, and
followed like the hash banks (services/bank_sync.py, which calls this on every
refresh): new feature rows by id above a watermark (with a small overlap,
because PostgreSQL may commit ids out of order), removed and re-activated
entries by the bank change log (`hash_events`), and any bank created, edited or
deleted by reloading everything (a few thousand pictures: well under a second).
So a flag in the console bites in the running gate at once (the flag chain
refreshes the banks) and in every other replica within `banks.refresh_s`.
"""

from __future__ import annotations

import logging
import threading

from warden.media.keypoint_stage import HeldPicture, KeypointStage
from warden.media.keypoints import Features
from warden.store.banks import BankStore
from warden.store.keypoint_features import KeypointFeatureStore, StoredFeatures

log = logging.getLogger(__name__)

OVERLAP = 100  # feature rows and events re-read below the watermarks on each refresh


def held(row: StoredFeatures) -> HeldPicture:
    """A stored row as the stage holds it."""
    return HeldPicture(row.entry_id, row.bank_id, row.value, Features(row.points, row.descriptors))


class KeypointSync:
    """Loads the stage from the store and keeps it in step (see the module docstring)."""

    def __init__(self, store: KeypointFeatureStore, banks: BankStore, stage: KeypointStage) -> None:
        self.store = store
        self.banks = banks
        self.stage = stage
        self._mark = 0
        self._event_mark = 0
        self._seen: set[int] = set()  # feature row ids applied above `_mark - OVERLAP`
        self._seen_events: set[int] = set()
        self._lock = threading.Lock()

    def load(self) -> int:
        """Load every live entry's features; how many pictures are held."""
        with self._lock:
            return self._load()

    def _load(self) -> int:
        mark, event_mark = self.store.marks()  # before reading: what comes after is replayed
        self.stage.set_banks(self.banks.bank_list())
        rows = self.store.live()
        self.stage.replace(held(r) for r in rows)
        self._mark, self._event_mark = mark, event_mark
        self._seen = {r.id for r in rows if r.id > mark - OVERLAP}
        self._seen_events = set()
        log.info("keypoint features loaded: %d held pictures", len(self.stage))
        return len(self.stage)

    def refresh(self) -> int:
        """Apply what changed since the last load or refresh; the number of changes."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> int:
        events = [
            e
            for e in self.store.events(max(0, self._event_mark - OVERLAP))
            if e[0] not in self._seen_events
        ]
        if any(op == "bank" for _, _, _, op in events):
            self._load()
            return 1
        rows = [r for r in self.store.live(max(0, self._mark - OVERLAP)) if r.id not in self._seen]
        last_op: dict[int, str] = {}
        for _, _, entry_id, op in events:  # in id order: the last op wins
            if entry_id is not None:
                last_op[entry_id] = op
        holding = self.stage.held()
        removed = [e for e, op in last_op.items() if op == "remove" and e in holding]
        new_entries = {r.entry_id for r in rows}
        revived = [e for e, op in last_op.items() if op == "add" and e not in holding | new_entries]
        back = self.store.for_entries(revived) if revived else []
        self.stage.update([held(r) for r in (*rows, *back)], removed)
        if rows:
            self._mark = max(self._mark, max(r.id for r in rows))
        if events:
            self._event_mark = max(self._event_mark, max(e[0] for e in events))
        self._seen.update(r.id for r in rows)
        self._seen = {i for i in self._seen if i > self._mark - OVERLAP}
        self._seen_events.update(e[0] for e in events)
        self._seen_events = {i for i in self._seen_events if i > self._event_mark - OVERLAP}
        return len(rows) + len(back) + len(removed)
