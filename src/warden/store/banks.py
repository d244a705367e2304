"""Hash banks in the database, and keeping the in-memory matcher in step with them.

Entries are never deleted one by one: `remove` marks them (who, when, why), so
the provenance of every hash that ever refused an upload stays available for
a report. Deleting a whole bank does delete its entries.

The matcher (media/matcher.py) in every `warden serve` process follows the
tables without restarting: new entries are found by id above a watermark (with
an overlap window, because PostgreSQL may commit ids out of order), removals,
re-activations and bank changes by the `hash_events` log, and a periodic count
check reloads any bank whose size in memory disagrees with the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from warden.domain.banks import (
    DEFAULT_MIN_QUALITY,
    DEFAULT_PDQ_THRESHOLD,
    Bank,
    BankAction,
    BankEntry,
    BankKind,
    check_bank_name,
    normalise_hash,
)
from warden.errors import StoreError
from warden.media.matcher import BankMatcher
from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database

log = logging.getLogger(__name__)

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
CHUNK = 5_000
OVERLAP = 50_000  # ids re-read below the watermark on each refresh


class BankRow(Base):
    __tablename__ = "hash_banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(8))
    csam: Mapped[bool] = mapped_column(Boolean, default=False)
    pdq_threshold: Mapped[int] = mapped_column(Integer, default=DEFAULT_PDQ_THRESHOLD)
    min_quality: Mapped[int] = mapped_column(Integer, default=DEFAULT_MIN_QUALITY)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntryRow(Base):
    __tablename__ = "hash_entries"
    __table_args__ = (UniqueConstraint("bank_id", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("hash_banks.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(255), default="")
    added_by: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by: Mapped[str | None] = mapped_column(String(255))
    removed_reason: Mapped[str | None] = mapped_column(String(1000))


class EventRow(Base):
    """Changes the id watermark cannot see: removals, re-activations, bank edits."""

    __tablename__ = "hash_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))  # add | remove | bank
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _bank(row: BankRow) -> Bank:
    return Bank(
        id=row.id,
        name=row.name,
        kind=BankKind(row.kind),
        action=BankAction(row.action),
        csam=row.csam,
        pdq_threshold=row.pdq_threshold,
        min_quality=row.min_quality,
        description=row.description,
    )


def _entry(row: EntryRow, bank: str, kind: str) -> BankEntry:
    return BankEntry(
        row.id,
        bank,
        BankKind(kind),
        row.value,
        row.source,
        row.added_by,
        row.reason,
        row.created_at,
    )


@dataclass(frozen=True)
class NewEntry:
    """A hash to add, with its provenance."""

    value: str
    source: str = ""
    added_by: str = ""
    reason: str = ""


@dataclass
class AddResult:
    added: int = 0
    reactivated: int = 0
    existing: int = 0
    keep_ids: bool = False  # collect entry_ids (small adds, e.g. `warden flag`)
    entry_ids: list[int] = field(default_factory=list)

    def note(self, ids: Iterable[int]) -> None:
        if self.keep_ids:
            self.entry_ids.extend(ids)


class BankStore:
    """Banks and their entries. Blocking; call from threads in async code."""

    def __init__(self, database: Database) -> None:
        self.db = database

    # -- banks -------------------------------------------------------------------

    def create_bank(
        self,
        name: str,
        kind: BankKind,
        *,
        action: BankAction = BankAction.REJECT,
        csam: bool = False,
        pdq_threshold: int = DEFAULT_PDQ_THRESHOLD,
        min_quality: int = DEFAULT_MIN_QUALITY,
        description: str = "",
    ) -> Bank:
        Bank(0, name, kind, action, csam, pdq_threshold, min_quality, description)  # validate
        with self.db.session() as s:
            if s.scalar(select(BankRow).where(BankRow.name == name)) is not None:
                raise StoreError(f"bank {name!r} already exists", code="bank_exists")
            row = BankRow(
                name=name,
                kind=kind.value,
                action=action.value,
                csam=csam,
                pdq_threshold=pdq_threshold,
                min_quality=min_quality,
                description=description,
            )
            s.add(row)
            s.flush()
            s.add(EventRow(bank_id=row.id, op="bank"))
            return _bank(row)

    def ensure_bank(self, name: str, kind: BankKind, action: BankAction, description: str) -> Bank:
        """The bank, created with these settings when missing (used by `warden flag`)."""
        bank = self.find_bank(name)
        if bank is not None:
            if bank.kind is not kind:
                raise StoreError(
                    f"bank {name!r} holds {bank.kind.value} hashes, not {kind.value}",
                    code="bank_kind",
                )
            return bank
        return self.create_bank(name, kind, action=action, description=description)

    def update_bank(self, name: str, **changes: Any) -> Bank:
        with self.db.session() as s:
            row = self._bank_row(s, name)
            merged = _bank(row).__dict__ | {k: v for k, v in changes.items() if v is not None}
            bank = Bank(**merged)  # validates the combination
            row.action, row.csam = bank.action.value, bank.csam
            row.pdq_threshold, row.min_quality = bank.pdq_threshold, bank.min_quality
            row.description, row.updated_at = bank.description, utcnow()
            s.add(EventRow(bank_id=row.id, op="bank"))
            return bank

    def delete_bank(self, name: str) -> int:
        """Delete a bank and its entries; the number of entries deleted."""
        with self.db.session() as s:
            row = self._bank_row(s, name)
            count = s.scalar(select(func.count()).where(EntryRow.bank_id == row.id)) or 0
            s.execute(delete(EntryRow).where(EntryRow.bank_id == row.id))
            s.delete(row)
            s.add(EventRow(bank_id=row.id, op="bank"))
            return int(count)

    def find_bank(self, name: str) -> Bank | None:
        with self.db.session() as s:
            row = s.scalar(select(BankRow).where(BankRow.name == name))
            return None if row is None else _bank(row)

    def bank(self, name: str) -> Bank:
        with self.db.session() as s:
            return _bank(self._bank_row(s, name))

    def banks(self) -> list[tuple[Bank, int]]:
        """Every bank and its number of live entries."""
        with self.db.session() as s:
            counts = dict(
                s.execute(
                    select(EntryRow.bank_id, func.count())
                    .where(EntryRow.removed_at.is_(None))
                    .group_by(EntryRow.bank_id)
                ).all()
            )
            rows = s.scalars(select(BankRow).order_by(BankRow.name)).all()
            return [(_bank(r), int(counts.get(r.id, 0))) for r in rows]

    @staticmethod
    def _bank_row(s: Session, name: str) -> BankRow:
        check_bank_name(name)
        row = s.scalar(select(BankRow).where(BankRow.name == name))
        if row is None:
            raise StoreError(f"no bank named {name!r} (see `warden hashes banks`)", code="no_bank")
        return row

    # -- entries -----------------------------------------------------------------

    def add(
        self, bank_name: str, entries: Iterable[NewEntry], *, keep_ids: bool = False
    ) -> AddResult:
        """Add hashes (validated first: ValueError names the bad one); committed in
        chunks so a 10-million-line import neither holds one huge transaction nor
        loses what was done when it stops."""
        bank = self.bank(bank_name)
        result = AddResult(keep_ids=keep_ids)
        chunk: dict[str, NewEntry] = {}
        for entry in entries:
            value = normalise_hash(bank.kind, entry.value)
            chunk[value] = NewEntry(value, entry.source, entry.added_by, entry.reason)
            if len(chunk) >= CHUNK:
                self._add_chunk(bank, chunk, result)
                chunk = {}
        if chunk:
            self._add_chunk(bank, chunk, result)
        return result

    def _add_chunk(self, bank: Bank, chunk: dict[str, NewEntry], result: AddResult) -> None:
        with self.db.session() as s:
            have = {
                r.value: r
                for r in s.scalars(
                    select(EntryRow).where(
                        EntryRow.bank_id == bank.id, EntryRow.value.in_(list(chunk))
                    )
                )
            }
            fresh = []
            for value, e in chunk.items():
                row = have.get(value)
                if row is None:
                    fresh.append(
                        EntryRow(
                            bank_id=bank.id,
                            value=value,
                            source=e.source[:255],
                            added_by=e.added_by[:255],
                            reason=e.reason[:1000],
                        )
                    )
                elif row.removed_at is not None:
                    row.removed_at = row.removed_by = row.removed_reason = None
                    s.add(EventRow(bank_id=bank.id, entry_id=row.id, op="add"))
                    result.reactivated += 1
                    result.note([row.id])
                else:
                    result.existing += 1
                    result.note([row.id])
            s.add_all(fresh)
            s.flush()
            result.added += len(fresh)
            result.note(r.id for r in fresh)

    def remove(self, bank_name: str, values: Sequence[str], *, by: str, reason: str) -> int:
        """Mark entries removed (by hash or by entry id as text); the number removed."""
        bank = self.bank(bank_name)
        ids = [int(v) for v in values if v.isdigit() and len(v) < 20]
        hashes = [normalise_hash(bank.kind, v) for v in values if not (v.isdigit() and len(v) < 20)]
        with self.db.session() as s:
            rows = s.scalars(
                select(EntryRow).where(
                    EntryRow.bank_id == bank.id,
                    EntryRow.removed_at.is_(None),
                    EntryRow.value.in_(hashes) | EntryRow.id.in_(ids),
                )
            ).all()
            now = utcnow()
            for row in rows:
                row.removed_at, row.removed_by, row.removed_reason = now, by, reason
                s.add(EventRow(bank_id=bank.id, entry_id=row.id, op="remove"))
            return len(rows)

    def entries(
        self, bank_name: str, *, limit: int | None = None, include_removed: bool = False
    ) -> Iterator[BankEntry]:
        """A bank's entries in id order, read in chunks (export streams millions)."""
        bank = self.bank(bank_name)
        last, seen = 0, 0
        while limit is None or seen < limit:
            with self.db.session() as s:
                q = select(EntryRow).where(EntryRow.bank_id == bank.id, EntryRow.id > last)
                if not include_removed:
                    q = q.where(EntryRow.removed_at.is_(None))
                rows = s.scalars(q.order_by(EntryRow.id).limit(CHUNK)).all()
            if not rows:
                return
            for row in rows:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield _entry(row, bank.name, bank.kind.value)
            last = rows[-1].id

    def lookup(self, value: str) -> list[BankEntry]:
        """Live entries holding this exact hash, in any bank."""
        text = normalise_hash(BankKind.SHA256, value)
        with self.db.session() as s:
            rows = s.execute(
                select(EntryRow, BankRow.name, BankRow.kind)
                .join(BankRow, BankRow.id == EntryRow.bank_id)
                .where(EntryRow.value == text, EntryRow.removed_at.is_(None))
            ).all()
            return [_entry(r, name, kind) for r, name, kind in rows]

    def update_marker(self) -> tuple[int, int]:
        """(highest entry id, highest event id): where a matcher's refresh starts."""
        with self.db.session() as s:
            top = s.scalar(select(func.max(EntryRow.id))) or 0
            event = s.scalar(select(func.max(EventRow.id))) or 0
            return int(top), int(event)

    def live_counts(self) -> dict[int, int]:
        with self.db.session() as s:
            rows = s.execute(
                select(EntryRow.bank_id, func.count())
                .where(EntryRow.removed_at.is_(None))
                .group_by(EntryRow.bank_id)
            ).all()
            return {int(b): int(n) for b, n in rows}

    def live_values(self, bank_id: int) -> list[tuple[int, str]]:
        with self.db.session() as s:
            rows = s.execute(
                select(EntryRow.id, EntryRow.value)
                .where(EntryRow.bank_id == bank_id, EntryRow.removed_at.is_(None))
                .order_by(EntryRow.id)
            ).all()
            return [(int(i), v) for i, v in rows]

    def since(self, entry_id: int, event_id: int) -> tuple[list[Any], list[Any]]:
        """Entries with id > entry_id (live) and events with id > event_id."""
        with self.db.session() as s:
            entries = s.execute(
                select(EntryRow.id, EntryRow.bank_id, EntryRow.value)
                .where(EntryRow.id > entry_id, EntryRow.removed_at.is_(None))
                .order_by(EntryRow.id)
            ).all()
            events = s.execute(
                select(EventRow.id, EventRow.bank_id, EventRow.entry_id, EventRow.op)
                .where(EventRow.id > event_id)
                .order_by(EventRow.id)
            ).all()
            return list(entries), list(events)

    def entry_values(self, entry_ids: Sequence[int]) -> list[tuple[int, int, str]]:
        with self.db.session() as s:
            rows = s.execute(
                select(EntryRow.id, EntryRow.bank_id, EntryRow.value).where(
                    EntryRow.id.in_(list(entry_ids)), EntryRow.removed_at.is_(None)
                )
            ).all()
            return [(int(i), int(b), v) for i, b, v in rows]


class BankSync:
    """Loads a matcher from the store and keeps it in step (see the module docstring)."""

    def __init__(
        self, store: BankStore, matcher: BankMatcher, *, check_every_s: float = 600
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.check_every_s = check_every_s
        self._entry_mark = 0
        self._event_mark = 0
        self._recent: set[int] = set()  # ids above `_loaded_below` already applied
        self._seen_events: set[int] = set()
        self._loaded_below = 0  # every live entry up to this id came with the full load
        self._checked = 0.0

    def load(self) -> dict[str, int]:
        """Load every bank in full; the sizes loaded."""
        self.matcher.warm_up()
        entry_mark, event_mark = self.store.update_marker()
        banks = [b for b, _ in self.store.banks()]
        self.matcher.set_banks(banks)
        for bank in banks:
            self.matcher.bulk_load(bank.id, self.store.live_values(bank.id))
        self._entry_mark, self._event_mark = entry_mark, event_mark
        self._loaded_below = entry_mark
        self._recent, self._seen_events = set(), set()
        self._checked = time.monotonic()
        sizes = self.matcher.sizes()
        log.info("hash banks loaded: %s", sizes)
        return sizes

    def refresh(self) -> int:
        """Apply what changed since the last load or refresh; the number of changes."""
        entries, events = self.store.since(
            max(0, self._entry_mark - OVERLAP), max(0, self._event_mark - 100)
        )
        events = [e for e in events if e[0] not in self._seen_events]
        changes = 0
        if any(op == "bank" for _, _, _, op in events):
            known = {b.id for b in self.matcher.banks()}
            banks = [b for b, _ in self.store.banks()]
            self.matcher.set_banks(banks)
            for bank in banks:
                if bank.id not in known:
                    self.matcher.bulk_load(bank.id, self.store.live_values(bank.id))
            changes += 1
        by_bank: dict[int, list[tuple[int, str]]] = {}
        for entry_id, bank_id, value in entries:
            if entry_id not in self._recent and entry_id > self._loaded_below:
                by_bank.setdefault(bank_id, []).append((entry_id, value))
                self._recent.add(entry_id)
        last_op: dict[int, tuple[int, str]] = {}
        for _, bank_id, entry_id, op in events:  # in id order: the last op wins
            if entry_id is not None:
                last_op[entry_id] = (bank_id, op)
        removed: dict[int, list[int]] = {}
        revived = []
        for entry_id, (bank_id, op) in last_op.items():
            in_index = entry_id <= self._loaded_below or entry_id in self._recent
            if op == "remove" and in_index:
                removed.setdefault(bank_id, []).append(entry_id)
            elif op == "add" and in_index:
                revived.append(entry_id)
        for entry_id, bank_id, value in self.store.entry_values(revived) if revived else []:
            by_bank.setdefault(bank_id, []).append((entry_id, value))
        for bank_id, items in by_bank.items():
            self.matcher.add(bank_id, items)
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
