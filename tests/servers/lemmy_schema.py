"""Lemmy's database as each version really has it: only the tables and columns Warden reads.

Transcribed from LemmyNet/lemmy (the diesel schema each tag generates from its
migrations, and the image migrations themselves):

- "0.19.3" (0.19.0-0.19.3): `image_upload`, `local_user_id NOT NULL`
  (0.19.0 migrations/2023-08-31-205559_add_image_upload/up.sql:1-7;
  0.19.3 crates/db_schema/src/schema.rs:304-309). Content tables:
  0.19.3 crates/db_schema/src/schema.rs comment 79-94, community 153-186,
  custom_emoji 246-256, local_site 348-374, person 585-612, post 669-694,
  private_message 762-774, registration_application 799-806, site 835-854,
  tagline 879-885.
- "0.19.5" (0.19.4+): `image_upload` renamed `local_image`
  (0.19.4 migrations/2023-10-24-131607_proxy_links/up.sql:1-7, which also adds
  `remote_image`), `local_user_id` NULLable
  (0.19.4 migrations/2024-03-06-104706_local_image_user_opt/up.sql:1-2;
  0.19.5 crates/db_schema/src/schema.rs:344-349). Content tables: 0.19.5
  crates/db_schema/src/schema.rs comment 83-98, community 160-194, post 701-728,
  person 617-644, private_message 804-816, site 885-905.
- "1.0": `local_image (pictrs_alias, published_at, person_id, thumbnail_for_post_id)`
  (1.0.0-beta.1 migrations/2025-08-01-000034_no-image-token/up.sql:1-2,
  migrations/2025-08-01-000051_local_image_person/up.sql:7-24;
  crates/db_schema_file/src/schema.rs:364-369); `community.sidebar`/`summary`
  (schema.rs:135-182), `site.summary` (958-978), `multi_community` (578-602),
  post 766-809, person 684-711, comment 77-103, private_message 857-870.
- `post.community_id` (NOT NULL in Lemmy: 0.19.3 crates/db_schema/src/schema.rs:677, 0.19.5
  crates/db_schema/src/schema.rs:709, 1.0.0-beta.1 crates/db_schema_file/src/schema.rs:774;
  NULLable here so tests that place no post in a community may leave it out).
- Every version: diesel's `__diesel_schema_migrations (version, run_on)`, where
  the `image_upload` migration's row says when Lemmy began recording uploads.
"""

from __future__ import annotations

from datetime import datetime

VERSIONS = ("0.19.3", "0.19.5", "1.0")

_MIGRATIONS = """
CREATE TABLE __diesel_schema_migrations (
    version varchar(50) PRIMARY KEY NOT NULL,
    run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""

_CONTENT_019 = """
CREATE TABLE person (id serial PRIMARY KEY, name varchar NOT NULL, avatar text, banner text,
                     bio text, local boolean NOT NULL DEFAULT true);
CREATE TABLE local_user (id serial PRIMARY KEY, person_id int NOT NULL REFERENCES person);
CREATE TABLE community (id serial PRIMARY KEY, name varchar NOT NULL, description text,
                        icon text, banner text, local boolean NOT NULL DEFAULT true);
CREATE TABLE post (id serial PRIMARY KEY, name varchar NOT NULL, url varchar, body text,
                   thumbnail_url text, creator_id int, community_id int,
                   local boolean NOT NULL DEFAULT true);
CREATE TABLE comment (id serial PRIMARY KEY, content text NOT NULL,
                      local boolean NOT NULL DEFAULT true);
CREATE TABLE private_message (id serial PRIMARY KEY, content text NOT NULL,
                              local boolean NOT NULL DEFAULT true);
CREATE TABLE site (id serial PRIMARY KEY, name varchar NOT NULL, sidebar text, icon text,
                   banner text, description varchar(150));
CREATE TABLE local_site (id serial PRIMARY KEY, site_id int NOT NULL,
                         application_question text, legal_information text);
CREATE TABLE tagline (id serial PRIMARY KEY, content text NOT NULL);
CREATE TABLE custom_emoji (id serial PRIMARY KEY, shortcode varchar NOT NULL,
                           image_url text NOT NULL);
CREATE TABLE registration_application (id serial PRIMARY KEY, answer text NOT NULL);
"""

_CONTENT_10 = """
CREATE TABLE person (id serial PRIMARY KEY, name varchar NOT NULL, avatar text, banner text,
                     bio text, local boolean NOT NULL DEFAULT true);
CREATE TABLE local_user (id serial PRIMARY KEY, person_id int NOT NULL REFERENCES person);
CREATE TABLE community (id serial PRIMARY KEY, name varchar NOT NULL, sidebar text,
                        icon text, banner text, summary varchar(150),
                        local boolean NOT NULL DEFAULT true);
CREATE TABLE multi_community (id serial PRIMARY KEY, name varchar NOT NULL,
                              summary varchar(150), sidebar text,
                              local boolean NOT NULL DEFAULT true);
CREATE TABLE post (id serial PRIMARY KEY, name varchar NOT NULL, url varchar, body text,
                   thumbnail_url text, creator_id int, community_id int,
                   local boolean NOT NULL DEFAULT true);
CREATE TABLE comment (id serial PRIMARY KEY, content text NOT NULL,
                      local boolean NOT NULL DEFAULT true);
CREATE TABLE private_message (id serial PRIMARY KEY, content text NOT NULL,
                              local boolean NOT NULL DEFAULT true);
CREATE TABLE site (id serial PRIMARY KEY, name varchar NOT NULL, sidebar text, icon text,
                   banner text, summary varchar(150));
CREATE TABLE local_site (id serial PRIMARY KEY, site_id int NOT NULL,
                         application_question text, legal_information text);
CREATE TABLE tagline (id serial PRIMARY KEY, content text NOT NULL);
CREATE TABLE custom_emoji (id serial PRIMARY KEY, shortcode varchar NOT NULL,
                           image_url text NOT NULL);
CREATE TABLE registration_application (id serial PRIMARY KEY, answer text NOT NULL);
"""

_IMAGES = {
    "0.19.3": """
CREATE TABLE image_upload (
    local_user_id int REFERENCES local_user ON UPDATE CASCADE ON DELETE CASCADE NOT NULL,
    pictrs_alias text PRIMARY KEY,
    pictrs_delete_token text NOT NULL,
    published timestamptz DEFAULT now() NOT NULL
);
""",
    "0.19.5": """
CREATE TABLE remote_image (id serial PRIMARY KEY, link text NOT NULL UNIQUE,
                           published timestamptz DEFAULT now() NOT NULL);
CREATE TABLE local_image (
    local_user_id int REFERENCES local_user ON UPDATE CASCADE ON DELETE CASCADE,
    pictrs_alias text PRIMARY KEY,
    pictrs_delete_token text NOT NULL,
    published timestamptz DEFAULT now() NOT NULL
);
""",
    "1.0": """
CREATE TABLE remote_image (link text PRIMARY KEY, published_at timestamptz DEFAULT now() NOT NULL);
CREATE TABLE local_image (
    pictrs_alias text PRIMARY KEY,
    published_at timestamptz DEFAULT now() NOT NULL,
    person_id int REFERENCES person (id) ON UPDATE CASCADE ON DELETE CASCADE,
    thumbnail_for_post_id int REFERENCES post (id) ON UPDATE CASCADE ON DELETE CASCADE
);
""",
}


def ddl(version: str) -> str:
    """The CREATE statements for one Lemmy version."""
    content = _CONTENT_10 if version == "1.0" else _CONTENT_019
    return _MIGRATIONS + content + _IMAGES[version]


def migrations(upload_table_run_on: datetime) -> list[tuple[str, datetime]]:
    """Rows of `__diesel_schema_migrations` around the upload-table migration."""
    return [
        ("20230621153242", datetime(2023, 7, 1)),
        ("20230831205559", upload_table_run_on),
    ]


def image_url(host: str, alias: str, version: str) -> str:
    """An image URL as the version writes it (0.19.5 crates/api_common/src/request.rs:193-198;
    1.0.0-beta.1 crates/api/api_utils/src/request.rs:340-346)."""
    route = "api/v4/image" if version == "1.0" else "pictrs/image"
    return f"https://{host}/{route}/{alias}"
