"""Read-only access to Lemmy's own PostgreSQL database, for the federated purge.

What is a local upload depends on the schema, which is read from the database
itself (which tables and columns exist), never from configuration:

- 0.19.0-0.19.3: table `image_upload`, one row per upload, `local_user_id NOT
  NULL` (LemmyNet/lemmy 0.19.0 migrations/2023-08-31-205559_add_image_upload/up.sql:1-7).
  Remote thumbnails are in no table.
- 0.19.4+: renamed `local_image` (0.19.4 migrations/2023-10-24-131607_proxy_links/up.sql:7),
  `local_user_id` made NULLable (0.19.4 migrations/2024-03-06-104706_local_image_user_opt/up.sql:1-2)
  and NULL for the thumbnails Lemmy caches for posts, local or federated
  (0.19.5 crates/api_common/src/request.rs:309-319); uploads set it
  (0.19.5 crates/routes/src/images.rs:101-106).
- 1.0: `local_user_id` replaced by `person_id` and `thumbnail_for_post_id`
  (1.0.0-beta.1 migrations/2025-08-01-000051_local_image_person/up.sql:7-24);
  uploads have `person_id` and no post (1.0.0-beta.1 crates/routes/src/images/upload.rs:248-252),
  thumbnails have the post and its creator (1.0.0-beta.1 crates/api/api_utils/src/request.rs:505-510).

Uploads made before 0.19 are in no table at all, so content is read too: an
alias referenced by any local row (posts, comments, persons, communities,
private messages; the site, local_site, taglines, custom emoji, registration
answers) is local, whatever host the URL names. Lemmy 0.19 writes image URLs
as `<host>/pictrs/image/<alias>` (0.19.5 crates/api_common/src/request.rs:193-198),
1.0 as `<host>/api/v4/image/<alias>` (1.0.0-beta.1 crates/api/api_utils/src/request.rs:340-346),
beside which 1.0 serves `/api/v4/image/proxy|health|list`, which are no aliases
(1.0.0-beta.1 crates/api/routes/src/lib.rs:479-489).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, inspect, text

from warden.errors import (
    LemmySchemaError,
)

#: (table, column) pairs that may hold an image URL or markdown with image links.
URL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("post", "url"),
    ("post", "thumbnail_url"),
    ("post", "body"),
    ("comment", "content"),
    ("person", "avatar"),
    ("person", "banner"),
    ("person", "bio"),
    ("community", "icon"),
    ("community", "banner"),
    ("community", "description"),  # 0.19 (markdown sidebar)
    ("community", "sidebar"),  # 1.0
    ("community", "summary"),  # 1.0
    ("private_message", "content"),
    ("multi_community", "sidebar"),  # 1.0
    ("multi_community", "summary"),  # 1.0
    ("site", "icon"),
    ("site", "banner"),
    ("site", "sidebar"),
    ("site", "description"),  # 0.19
    ("site", "summary"),  # 1.0
    ("local_site", "legal_information"),
    ("local_site", "application_question"),
    ("tagline", "content"),
    ("custom_emoji", "image_url"),
    ("registration_application", "answer"),
)

#: Federated evidence: a federated post's thumbnail on this host was cached by this Lemmy.
THUMBNAIL_COLUMN = ("post", "thumbnail_url")

#: The migration that began recording every local upload (0.19.0); diesel keys it by
#: its folder name's date part in `__diesel_schema_migrations.version` (dashes or not).
UPLOAD_TABLE_MIGRATION = "20230831205559"
#: `run_on` is a timestamp without zone; a day's margin covers any server time zone.
_RUN_ON_MARGIN = timedelta(days=1)

_URL = re.compile(
    r"(?:https?://([^/\s\"'()<>\[\]]+))?/(pictrs/image|api/v4/image)/([A-Za-z0-9][A-Za-z0-9._-]*)"
)
#: Routes beside the images that are not aliases: 1.0's /api/v4/image/proxy|health|list
#: and 0.19's /pictrs/image/delete/{token}/{filename} (0.19.5 crates/routes/src/images.rs:33-41).
_NOT_ALIASES = {
    "api/v4/image": frozenset({"proxy", "health", "list"}),
    "pictrs/image": frozenset({"delete"}),
}


def aliases_in(value: str) -> Iterator[tuple[str | None, str]]:
    """(host or None for a relative link, alias) for every image URL in a value or markdown."""
    for match in _URL.finditer(value or ""):
        host, route, alias = match.groups()
        if alias in _NOT_ALIASES[route]:
            continue
        yield (host.lower() if host else None), alias


def alias_of(url: str, local_hosts: Iterable[str]) -> str | None:
    """The alias of an image URL served by this instance (0.19 or 1.0 form), or None."""
    hosts = {h.lower() for h in local_hosts}
    for host, alias in aliases_in(url):
        if host in hosts:
            return alias
    return None


@dataclass(frozen=True)
class LemmySchema:
    """What the connected database says about itself."""

    flavour: str  # "0.19.0-0.19.3" | "0.19.4+" | "1.0"
    upload_table: str
    columns: dict[str, set[str]]
    uploads_recorded_since: datetime | None  # every local upload since is in upload_table


@dataclass
class MediaCatalog:
    """Every alias Lemmy knows, and why: the input of the purge plan."""

    schema: LemmySchema
    local_uploads: set[str] = field(default_factory=set)
    local_refs: dict[str, str] = field(default_factory=dict)
    cached_thumbnails: dict[str, str] = field(default_factory=dict)  # federated evidence
    remote_refs: dict[str, str] = field(default_factory=dict)  # on this host, from remote rows

    @property
    def protected(self) -> set[str]:
        """Aliases never to purge, nor any file that has one of them."""
        return self.local_uploads | set(self.local_refs)


def _local_upload_predicate(schema: LemmySchema) -> tuple[str, str]:
    """(FROM clause, WHERE predicate) selecting local uploads in the upload table."""
    cols = schema.columns.get(schema.upload_table, set())
    if schema.upload_table == "image_upload":
        return "image_upload u", "true"  # every row is a local user's upload
    parts: list[str] = []
    joins = ["local_image u"]
    if "local_user_id" in cols:
        parts.append("u.local_user_id IS NOT NULL")
    if "person_id" in cols:
        joins.append("LEFT JOIN person p ON p.id = u.person_id")
        parts.append("p.local IS TRUE")
        if "thumbnail_for_post_id" in cols:
            parts.append("(u.person_id IS NOT NULL AND u.thumbnail_for_post_id IS NULL)")
    if "thumbnail_for_post_id" in cols:
        joins.append("LEFT JOIN post t ON t.id = u.thumbnail_for_post_id")
        parts.append("t.local IS TRUE")
    return " ".join(joins), "(" + " OR ".join(parts) + ")"


class LemmyDatabase:
    """A read-only reader over Lemmy's database URL (use a read-only role)."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        self._schema: LemmySchema | None = None

    def close(self) -> None:
        self.engine.dispose()

    def schema(self) -> LemmySchema:
        """Detect the schema; refuses (fail closed) one whose local uploads it cannot tell."""
        if self._schema is not None:
            return self._schema
        inspector = inspect(self.engine)
        tables = set(inspector.get_table_names())
        columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in tables}
        if "local_image" in tables:
            cols = columns["local_image"]
            if "person_id" in cols or "thumbnail_for_post_id" in cols:
                flavour = "1.0"
            elif "local_user_id" in cols:
                flavour = "0.19.4+"
            else:
                raise LemmySchemaError(
                    "Lemmy's local_image has neither local_user_id nor person_id: unknown"
                    " schema, refusing to decide what is a local upload"
                )
            upload_table = "local_image"
        elif "image_upload" in tables:
            flavour, upload_table = "0.19.0-0.19.3", "image_upload"
        else:
            raise LemmySchemaError(
                "Lemmy's database has neither local_image nor image_upload (Lemmy older than"
                " 0.19?): local uploads cannot be told apart, refusing to purge"
            )
        self._schema = LemmySchema(flavour, upload_table, columns, self._recording_since(tables))
        return self._schema

    def _recording_since(self, tables: set[str]) -> datetime | None:
        if "__diesel_schema_migrations" not in tables:
            return None
        with self.engine.connect() as conn:
            run_on = conn.execute(
                text(
                    "SELECT min(run_on) FROM __diesel_schema_migrations"
                    " WHERE replace(version, '-', '') LIKE :v"
                ),
                {"v": UPLOAD_TABLE_MIGRATION + "%"},
            ).scalar()
        if not isinstance(run_on, datetime):
            return None
        if run_on.tzinfo is None:
            run_on = run_on.replace(tzinfo=UTC)
        return run_on + _RUN_ON_MARGIN

    def local_aliases(self) -> set[str]:
        """Every alias the upload table records as a local upload (not cached thumbnails)."""
        schema = self.schema()
        source, predicate = _local_upload_predicate(schema)
        query = f"SELECT u.pictrs_alias FROM {source} WHERE {predicate}"  # noqa: S608 - fixed names
        with self.engine.connect() as conn:
            return {str(row[0]) for row in conn.execute(text(query))}

    def is_local(self, alias: str) -> bool:
        """Checked again right before each purge: uploads made during a run are safe too."""
        schema = self.schema()
        source, predicate = _local_upload_predicate(schema)
        query = f"SELECT 1 FROM {source} WHERE u.pictrs_alias = :a AND {predicate}"  # noqa: S608
        with self.engine.connect() as conn:
            return conn.execute(text(query), {"a": alias}).first() is not None

    def uploader_of(self, alias: str) -> tuple[int, str] | None:
        """(person id, name) of the local account Lemmy recorded as uploading `alias`:
        `local_image.person_id` on 1.0, `local_user_id` -> `local_user.person_id` on
        0.19 (see the module docstring for the tables). The fallback attribution for
        deployments without the ingest proxy (`warden decisions show`); None when Lemmy
        recorded no uploader (a cached thumbnail, or an unknown alias)."""
        schema = self.schema()
        cols = schema.columns.get(schema.upload_table, set())
        if "person_id" in cols:
            source = f"{schema.upload_table} u JOIN person p ON p.id = u.person_id"
        elif "local_user_id" in cols:
            source = (
                f"{schema.upload_table} u JOIN local_user l ON l.id = u.local_user_id"
                " JOIN person p ON p.id = l.person_id"
            )
        else:
            return None
        query = f"SELECT p.id, p.name FROM {source} WHERE u.pictrs_alias = :a"  # noqa: S608
        with self.engine.connect() as conn:
            row = conn.execute(text(query), {"a": alias}).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def _cached_thumbnails(self, schema: LemmySchema) -> dict[str, str]:
        """Upload-table rows that are thumbnails Lemmy cached (0.19.4+ and 1.0), not local."""
        if schema.upload_table != "local_image":
            return {}
        source, predicate = _local_upload_predicate(schema)
        query = f"SELECT u.pictrs_alias FROM {source} WHERE NOT {predicate}"  # noqa: S608
        with self.engine.connect() as conn:
            return {str(r[0]): "local_image (cached thumbnail)" for r in conn.execute(text(query))}

    def references(self) -> Iterator[tuple[str, str, str | None, bool]]:
        """(table.column, alias, host, row is local) for every image URL in Lemmy's content.

        Tables without a `local` column (site, local_site, tagline, custom_emoji,
        registration_application) count as local: protecting too much only keeps media.
        """
        schema = self.schema()
        with self.engine.connect() as conn:
            for table, column in URL_COLUMNS:
                cols = schema.columns.get(table)
                if not cols or column not in cols:
                    continue
                local = "local" if "local" in cols else "true"
                rows = conn.execute(
                    text(
                        f"SELECT {column}, {local} FROM {table} "  # noqa: S608 - names from URL_COLUMNS
                        f"WHERE {column} LIKE '%/pictrs/image/%' OR {column} LIKE '%/api/v4/image/%'"
                    )
                )
                for value, is_local in rows:
                    for host, alias in aliases_in(str(value)):
                        yield f"{table}.{column}", alias, host, bool(is_local)

    def known_aliases(self, local_hosts: Iterable[str]) -> set[str]:
        """Every alias in the upload table or in content on this host (or a relative link)."""
        hosts = {h.lower() for h in local_hosts}
        table = self.schema().upload_table
        with self.engine.connect() as conn:
            found = {str(r[0]) for r in conn.execute(text(f"SELECT pictrs_alias FROM {table}"))}  # noqa: S608
        found |= {a for _, a, host, _ in self.references() if host is None or host in hosts}
        return found

    def catalog(self, local_hosts: Iterable[str]) -> MediaCatalog:
        """Classify every alias Lemmy knows: local uploads, local references, federated evidence."""
        hosts = {h.lower() for h in local_hosts}
        schema = self.schema()
        catalog = MediaCatalog(schema, local_uploads=self.local_aliases())
        catalog.cached_thumbnails = self._cached_thumbnails(schema)
        for source, alias, host, is_local in self.references():
            if is_local:
                catalog.local_refs.setdefault(alias, source)
            elif host in hosts:
                if tuple(source.split(".", 1)) == THUMBNAIL_COLUMN:
                    catalog.cached_thumbnails.setdefault(alias, f"{source} (federated post)")
                else:
                    catalog.remote_refs.setdefault(alias, source)
        return catalog

    def posts_using(
        self, aliases: Iterable[str], local_hosts: Iterable[str]
    ) -> list[tuple[str, int, int, str | None]]:
        """(alias, post id, community id, community name) for every post whose `url`,
        `thumbnail_url` or body uses one of `aliases` on this host (or as a relative link).

        `post.community_id` is NOT NULL in every version (0.19.5
        crates/db_schema/src/schema.rs:709; 1.0.0-beta.1 crates/db_schema_file/src/schema.rs:774).
        The SQL only narrows by substring; each value is then read with `aliases_in`,
        so `a.jpg` never places `xa.jpg`, and another host's URL places nothing."""
        wanted = sorted({a for a in aliases if a})
        hosts = {h.lower() for h in local_hosts}
        cols = self.schema().columns.get("post", set())
        if not wanted or not {"community_id", "url", "body"} <= cols:
            return []
        fields = [c for c in ("url", "thumbnail_url", "body") if c in cols]
        found: list[tuple[str, int, int, str | None]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 50):
                chunk = wanted[start : start + 50]
                params = {f"a{i}": f"%/{a}%" for i, a in enumerate(chunk)}
                where = " OR ".join(f"p.{c} LIKE :{k}" for c in fields for k in params)
                rows = conn.execute(
                    text(
                        f"SELECT p.id, p.community_id, c.name, {', '.join('p.' + c for c in fields)}"  # noqa: S608 - fixed names
                        f" FROM post p LEFT JOIN community c ON c.id = p.community_id WHERE {where}"
                    ),
                    params,
                )
                for post_id, community_id, name, *values in rows:
                    used = {
                        alias
                        for value in values
                        for host, alias in aliases_in(str(value or ""))
                        if host is None or host in hosts
                    }
                    found.extend(
                        (
                            alias,
                            int(post_id),
                            int(community_id),
                            None if name is None else str(name),
                        )
                        for alias in sorted(used & set(chunk))
                    )
        return found
