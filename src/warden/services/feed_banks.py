"""How feed listings become bank entries: the trust and quorum rules applied to the
local banks, through BankStore's public methods only.
"""

from __future__ import annotations

from warden.domain.feeds import Trust, quorum_met
from warden.store.bank_import import NewEntry
from warden.store.banks import BankStore
from warden.store.feed_tables import Subscription
from warden.store.feeds import FeedStore


def follow_listings(
    feeds: FeedStore, banks: BankStore, sub: Subscription, values: list[str]
) -> None:
    """Make the local banks follow the feeds' listings of `values` (idempotent).

    A hash is in a subscription's bank while that feed lists it (review, or
    reject at quorum 1) or while at least `quorum` distinct publishers do; it
    leaves when that stops being true, unless an admin added it by hand (only
    entries whose `added_by` starts with `feed:` are ever removed here). `sub`
    is the subscription whose batch changed the listings: its bank is checked
    even when no feed lists the hash any more."""
    if not values:
        return
    subs = {s.id: s for s in feeds.subscriptions()}
    listers = feeds.listers(values)
    wanted: dict[str, list[NewEntry]] = {}
    unwanted: dict[str, list[str]] = {}
    for value in values:
        found = listers.get(value, [])
        publishers = {fp for _, fp, _, _ in found}
        keep: set[str] = set()
        for sub_id, fp, bank, seq in found:
            s = subs[sub_id]
            trusted = s.trust is Trust.REVIEW or quorum_met(publishers, s.quorum)
            if trusted and bank not in keep:
                keep.add(bank)
                wanted.setdefault(bank, []).append(
                    NewEntry(
                        value,
                        source=f"feed {s.url} entry {seq}"[:255],
                        added_by=f"feed:{s.feed}@{fp}"[:255],
                        reason=f"listed by {len(publishers)} publisher(s)",
                    )
                )
        for bank in {b for _, _, b, _ in found} | {sub.bank}:
            if bank not in keep:
                unwanted.setdefault(bank, []).append(value)
    for bank, entries in wanted.items():
        banks.add(bank, entries)
    for bank, gone in unwanted.items():
        if banks.find_bank(bank) is None:
            continue
        ours = [
            v
            for v in gone
            if any(e.bank == bank and e.added_by.startswith("feed:") for e in banks.lookup(v))
        ]
        if ours:
            banks.remove(bank, ours, by=f"feed:{sub.feed}", reason="retracted by its feeds")
