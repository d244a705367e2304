"""Read-only access to Lemmy's own PostgreSQL database, for the federated purge.

Lemmy records every local upload in `local_image` (0.19 and 1.0: column
`pictrs_alias`). Images that federated in and were cached by pict-rs are the
pict-rs URLs on Lemmy's own host that Lemmy's content points at (post
thumbnails and links, avatars, banners, community and site icons, and in 1.0
`image_details`) and whose alias is not a local upload. Only columns that
exist in the connected schema are read, so one reader serves 0.19 and 1.0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, inspect, text

#: (table, column) pairs that may hold a pict-rs URL, across Lemmy versions.
URL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("post", "thumbnail_url"),
    ("post", "url"),
    ("person", "avatar"),
    ("person", "banner"),
    ("community", "icon"),
    ("community", "banner"),
    ("site", "icon"),
    ("site", "banner"),
    ("image_details", "link"),
)

_ALIAS = re.compile(r"^https?://([^/]+)/pictrs/image/([A-Za-z0-9._-]+)")


@dataclass(frozen=True)
class Reference:
    """One place in Lemmy's data that points at a pict-rs alias."""

    alias: str
    table: str
    column: str


def alias_of(url: str, local_hosts: Iterable[str]) -> str | None:
    """The pict-rs alias of a URL served by this instance, or None."""
    match = _ALIAS.match(url or "")
    if not match or match.group(1).lower() not in {h.lower() for h in local_hosts}:
        return None
    return match.group(2)


class LemmyDatabase:
    """A read-only reader over Lemmy's database URL (use a read-only role)."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    def close(self) -> None:
        self.engine.dispose()

    def _columns(self) -> list[tuple[str, str]]:
        inspector = inspect(self.engine)
        tables = set(inspector.get_table_names())
        present = []
        for table, column in URL_COLUMNS:
            if table in tables and column in {c["name"] for c in inspector.get_columns(table)}:
                present.append((table, column))
        return present

    def local_aliases(self) -> set[str]:
        """Every alias uploaded by a local user."""
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT pictrs_alias FROM local_image"))}

    def is_local(self, alias: str) -> bool:
        """Checked again right before each purge: uploads made during a run are safe too."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM local_image WHERE pictrs_alias = :a"), {"a": alias}
            ).first()
        return found is not None

    def references(self, local_hosts: Iterable[str]) -> Iterator[Reference]:
        """Every pict-rs alias on this instance that Lemmy's content points at."""
        hosts = list(local_hosts)
        with self.engine.connect() as conn:
            for table, column in self._columns():
                rows = conn.execute(
                    text(f"SELECT {column} FROM {table} WHERE {column} LIKE '%/pictrs/image/%'")  # noqa: S608 - names from URL_COLUMNS
                )
                for (url,) in rows:
                    alias = alias_of(url, hosts)
                    if alias:
                        yield Reference(alias, table, column)
