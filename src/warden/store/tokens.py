"""API tokens for every endpoint but pict-rs's: hashed at rest, shown once.

Only the SHA-256 of a token is stored; a leaked database does not give anyone
a working token. `verify` looks the hash up and compares it in constant time,
and refuses revoked tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.base import Base, UTCDateTime, utcnow
from warden.store.database import Database

PREFIX = "wdn_"


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class ApiToken:
    """What is known about a token (never the token itself)."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _to_token(row: TokenRow) -> ApiToken:
    return ApiToken(row.id, row.name, row.created_at, row.last_used_at, row.revoked_at)


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class TokenStore:
    """Create, verify, list and revoke API tokens. Blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, name: str) -> tuple[ApiToken, str]:
        """A new token; the plaintext is returned once and never stored."""
        if not name.strip() or len(name) > 100:
            raise ValueError("a token name is 1 to 100 characters")
        plaintext = PREFIX + secrets.token_urlsafe(32)
        with self.database.session() as session:
            row = TokenRow(name=name.strip(), token_hash=token_hash(plaintext), created_at=utcnow())
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
