"""The scanner's keypoint stage: re-posts of pictures Warden holds, cropped or turned.

A hash bank entry whose picture Warden itself had (a file flagged through the
console or `warden flag`) keeps the picture's ORB features (media/keypoints.py;
stored in the database, store/keypoint_features.py, never the picture). When no
hash matched a scan, the first frame is described and looked up among them; a
verified match decides like the bank its entry belongs to (the flag bank
refuses), with a reason that names the keypoints and the inlier count. With no
held features the stage costs nothing: no ORB call.

Hash-only lists (NCMEC, feeds) have no picture behind their entries, so this
stage never covers them (docs/banks.md says which edits each kind of bank
survives).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

from warden.domain.banks import Bank, BankAction
from warden.domain.verdict import Decision, Reason
from warden.media.keypoints import MIN_INLIERS, Features, KeypointIndex, features


@dataclass(frozen=True)
class HeldPicture:
    """The features of one bank entry's picture (what the store gives back)."""

    entry_id: int
    bank_id: int
    value: str  # the entry's hash, for the record
    features: Features


@dataclass(frozen=True)
class KeypointBankMatch:
    """A scan that shows a held picture: a bank match found by keypoints (`BankMatch`)."""

    bank: Bank
    entry_id: int
    value: str
    inliers: int
    min_inliers: int = MIN_INLIERS

    @property
    def decision(self) -> Decision:
        return self.bank.action.decision

    @property
    def reason(self) -> Reason:
        b = self.bank
        code = "hash_allow" if b.action is BankAction.ALLOW else "hash_match"
        verb = {BankAction.REJECT: "refused", BankAction.REVIEW: "held for review"}.get(
            b.action, "allowed"
        )
        how = f"keypoints ({self.inliers} matching points, {self.min_inliers} needed)"
        return Reason(
            code, f"{verb}: matches bank '{b.name}' entry {self.entry_id} by {how}", self.as_dict()
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "bank": self.bank.name,
            "kind": self.bank.kind.value,
            "action": self.bank.action.value,
            "csam": self.bank.csam,
            "entry": self.entry_id,
            "value": self.value,
            "distance": None,
            "frame": 0,
            "variant": "keypoints",
            "inliers": self.inliers,
        }


class KeypointStage:
    """Held pictures and the banks they belong to; thread-safe (copy-on-write).

    Filled and kept in step by services/keypoint_sync.py; asked by the scanner."""

    def __init__(self, *, enabled: bool = True, min_inliers: int = MIN_INLIERS) -> None:
        self.enabled = enabled
        self.index = KeypointIndex(min_inliers)
        self._entries: dict[int, tuple[int, str]] = {}  # entry -> (bank id, value)
        self._banks: dict[int, Bank] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.index)

    @property
    def active(self) -> bool:
        """Whether a scan should ask: on, and at least one picture held."""
        return self.enabled and len(self.index) > 0

    def held(self) -> set[int]:
        """The entries whose pictures are held."""
        return self.index.entries()

    def set_banks(self, banks: Iterable[Bank]) -> None:
        """The banks as they are now (an action changed, a bank went away)."""
        self._banks = {b.id: b for b in banks}

    def replace(self, pictures: Iterable[HeldPicture]) -> None:
        """Hold exactly these pictures (a full load)."""
        pictures = list(pictures)
        with self._lock:
            self._entries = {p.entry_id: (p.bank_id, p.value) for p in pictures}
            self.index.replace({p.entry_id: p.features for p in pictures})

    def update(self, added: Iterable[HeldPicture], removed: Iterable[int]) -> None:
        """Hold these pictures too, and no longer those entries."""
        added, removed = list(added), list(removed)
        if not added and not removed:
            return
        with self._lock:
            entries = dict(self._entries)
            for entry in removed:
                entries.pop(entry, None)
            entries.update({p.entry_id: (p.bank_id, p.value) for p in added})
            self.index.update({p.entry_id: p.features for p in added}, removed)
            self._entries = entries

    def match(self, image: Image.Image) -> list[KeypointBankMatch]:
        """The held pictures this image shows, as bank matches (most inliers first);
        nothing, without an ORB call, when the stage is not active."""
        if not self.active:
            return []
        entries, banks = self._entries, self._banks
        found = []
        for m in self.index.match_features(features(image)):
            bank_id, value = entries.get(m.entry, (None, ""))
            bank = banks.get(bank_id) if bank_id is not None else None
            if bank is not None:  # a bank deleted since: its pictures no longer count
                found.append(
                    KeypointBankMatch(bank, m.entry, value, m.inliers, self.index.min_inliers)
                )
        return found
