"""API tokens for every endpoint but pict-rs's: hashed at rest, shown once, scoped.

Only the SHA-256 of a token is stored; a leaked database does not give anyone
a working token. `verify` looks the hash up and compares it in constant time,
and refuses revoked tokens.

Each token carries scopes (least privilege): `scan` may call `/api/v1/scan`,
`admin` may call `/api/v1/admin/*` (reload today). A token made for a
moderation bot that only scans cannot change the configuration. Tokens made
before scopes existed were migrated to `scan` only (migration
0004_token_scopes): the safe direction — an admin re-creates an admin token
with `warden tokens create NAME --scope admin` rather than every old token
silently keeping the power to reload.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database

PREFIX = "wdn_"
#: What a token may do; stored as a comma-separated list in `api_tokens.scopes`.
SCOPES = ("scan", "admin")
DEFAULT_SCOPES = ("scan",)


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Validated scopes (ValueError naming the unknown one); at least one."""
    parts = (part.strip().lower() for value in values for part in value.split(","))
    chosen = frozenset(part for part in parts if part)
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}")
    if not chosen:
        raise ValueError(f"a token needs at least one scope ({', '.join(SCOPES)})")
    return chosen


def _stored(scopes: frozenset[str]) -> str:
    return ",".join(s for s in SCOPES if s in scopes)


def _loaded(text: str | None) -> frozenset[str]:
    # an unreadable value grants nothing (fail closed), never a default
    return frozenset(s for s in (text or "").split(",") if s in SCOPES)


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(64), server_default="scan")


@dataclass(frozen=True)
class ApiToken:
    """What is known about a token (never the token itself)."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def _to_token(row: TokenRow) -> ApiToken:
    return ApiToken(
        row.id, row.name, row.created_at, row.last_used_at, row.revoked_at, _loaded(row.scopes)
    )


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class TokenStore:
    """Create, verify, list and revoke API tokens. Blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, name: str, scopes: Iterable[str] = DEFAULT_SCOPES) -> tuple[ApiToken, str]:
        """A new token with these scopes (default: scan only); the plaintext is returned
        once and never stored. ValueError for a bad name or an unknown scope."""
        if not name.strip() or len(name) > 100:
            raise ValueError("a token name is 1 to 100 characters")
        chosen = parse_scopes(scopes)
        plaintext = PREFIX + secrets.token_urlsafe(32)
        with self.database.session() as session:
            row = TokenRow(
                name=name.strip(),
                token_hash=token_hash(plaintext),
                created_at=utcnow(),
                scopes=_stored(chosen),
            )
            session.add(row)
            session.flush()
            return _to_token(row), plaintext

    def verify(self, plaintext: str) -> ApiToken | None:
        """The token's record when it is known and not revoked, else None."""
        digest = token_hash(plaintext)
        with self.database.session() as session:
            row = session.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            if row.revoked_at is not None:
                return None
            row.last_used_at = utcnow()
            return _to_token(row)

    def list(self) -> list[ApiToken]:
        with self.database.session() as session:
            return [_to_token(r) for r in session.scalars(select(TokenRow).order_by(TokenRow.id))]

    def revoke(self, token_id: int) -> bool:
        """Revoke a token; False when there is no such token."""
        with self.database.session() as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True
