"""Hash banks in the database: banks, their entries with provenance, the change log.

Slightly over ~400 lines: the bank tables and their change log are one store (bulk
import is apart in store/bank_import.py, syncing in services/bank_sync.py).

Entries are never deleted one by one: `remove` marks them (who, when, why), so
the provenance of every hash that ever refused an upload stays available for
a report. Deleting a whole bank does delete its entries. Bulk adds go through
store/bank_import.py; removals, re-activations and bank edits are written to
`hash_events`, the log the matchers follow (services/bank_sync.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
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
from warden.domain.signals import SHA256, signal_type
from warden.errors import StoreError
from warden.store import bank_import
from warden.store.bank_import import AddResult as AddResult
from warden.store.bank_import import NewEntry as NewEntry
from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database

log = logging.getLogger(__name__)

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
CHUNK = 5_000  # rows read per query when streaming entries out


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
    value: Mapped[str] = mapped_column(String(64))  # indexed with bank_id (the unique key)
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

    def bank_list(self) -> list[Bank]:
        """Every bank, without counting entries (a count reads the whole table: seconds
        at 10 million rows, which a start must not spend)."""
        with self.db.session() as s:
            return [_bank(r) for r in s.scalars(select(BankRow).order_by(BankRow.name))]

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
        """Add hashes (each validated by its type: BadHash names the bad one), in
        transactions of IMPORT_CHUNK rows so a 10-million-line import neither holds one
        huge transaction nor loses what was done when it stops. Rows are staged in a
        temporary table (COPY on PostgreSQL, one executemany on SQLite) and merged by
        three set statements, duplicates removed in SQL: ~100,000+ rows/s instead of
        one ORM object per row (issue 16)."""
        bank = self.bank(bank_name)
        signal = signal_type(bank.kind)
        result = AddResult(keep_ids=keep_ids)
        chunk: list[NewEntry] = []
        for entry in entries:
            chunk.append(entry)
            if len(chunk) >= bank_import.IMPORT_CHUNK:
                rows = bank_import.rows(signal, chunk)
                self._add_chunk(bank, rows, result, len(rows))
                chunk = []
        if chunk:
            rows = bank_import.rows(signal, chunk)
            self._add_chunk(bank, rows, result, len(rows))
        return result

    def add_many(
        self,
        bank_name: str,
        values: list[str],
        reasons: list[str],
        *,
        source: str,
        added_by: str,
    ) -> AddResult:
        """`add` for an import: the values with a reason each and one source and author
        for all (no NewEntry per line); same validation, chunks and counts."""
        if len(values) != len(reasons):
            raise ValueError("one reason per value")
        bank = self.bank(bank_name)
        signal = signal_type(bank.kind)
        result = AddResult()
        step = bank_import.IMPORT_CHUNK
        for start in range(0, len(values), step):
            rows, size = bank_import.value_rows(
                signal,
                values[start : start + step],
                reasons[start : start + step],
                source,
                added_by,
            )
            self._add_chunk(bank, rows, result, size)
        return result

    def _add_chunk(
        self, bank: Bank, rows: Iterable[bank_import.Row], result: AddResult, size: int
    ) -> None:
        with self.db.session() as s:
            bank_import.merge(s.connection(), bank.id, rows, result, size=size)

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
        """Live entries holding this exact hash, in any bank. The bank ids are named
        (`bank_id IN (...)`), so each bank is one probe of the unique (bank_id, value)
        index: no index on `value` alone is kept (it cost a third of an import), and
        without the ids SQLite would scan the table (migration 0008)."""
        text = SHA256.normalise(value)
        with self.db.session() as s:
            banks = list(s.scalars(select(BankRow.id)))
            rows = s.execute(
                select(EntryRow, BankRow.name, BankRow.kind)
                .join(BankRow, BankRow.id == EntryRow.bank_id)
                .where(
                    EntryRow.bank_id.in_(banks),
                    EntryRow.value == text,
                    EntryRow.removed_at.is_(None),
                )
            ).all()
            return [_entry(r, name, kind) for r, name, kind in rows]

    def update_marker(self) -> tuple[int, int]:
        """(highest entry id, highest event id): where a matcher's refresh starts."""
        with self.db.session() as s:
            top = s.scalar(select(func.max(EntryRow.id))) or 0
            event = s.scalar(select(func.max(EventRow.id))) or 0
            return int(top), int(event)

    def banks_changed_since(self, event_id: int) -> set[int]:
        """Ids of the banks created, edited or deleted after this event (a bank id can
        be used again once its bank is deleted: a saved index must not trust it)."""
        with self.db.session() as s:
            rows = s.scalars(
                select(EventRow.bank_id).where(EventRow.id > event_id, EventRow.op == "bank")
            ).all()
            return {int(b) for b in rows}

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
