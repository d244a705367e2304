"""The constructors every entry point uses: settings in, a working object out.

The CLI commands, the jobs and `warden serve` used to build databases, Lemmy
clients and stores each in their own way (one of them forgot the Lemmy
timeout). They call these instead, so an object is configured the same way
wherever it is made.
"""

from __future__ import annotations

from warden.adapters.lemmy import LemmyApi, build_lemmy
from warden.adapters.lemmy_db import LemmyDatabase
from warden.adapters.pictrs import PictrsAdmin
from warden.config import Settings
from warden.errors import ConfigError
from warden.store.banks import BankStore
from warden.store.database import Database
from warden.store.invites import InviteStore
from warden.store.tokens import TokenStore


def open_database(settings: Settings) -> Database:
    """Warden's own database (decisions, banks, invites, tokens); not migrated here."""
    return Database(settings.database_url)


def lemmy_client(settings: Settings, *, url: str | None = None) -> LemmyApi:
    """A client for the configured Lemmy (or `url`), with the configured API version
    and timeout."""
    return build_lemmy(
        url or settings.lemmy.url, settings.lemmy.api, timeout_s=settings.lemmy.timeout_s
    )


def bank_store(database: Database) -> BankStore:
    """The hash banks kept in `database`."""
    return BankStore(database)


def invite_store(settings: Settings, database: Database) -> InviteStore:
    """The invite ledger in `database`, under the configured invite policy."""
    return InviteStore(database, settings.invites.policy())


def lemmy_database(settings: Settings) -> LemmyDatabase:
    """Read access to Lemmy's own PostgreSQL (`federated.lemmy_database_url`)."""
    url = settings.federated.lemmy_database_url
    if url is None:
        raise ConfigError("federated.lemmy_database_url is not set")
    return LemmyDatabase(url)


def token_store(database: Database) -> TokenStore:
    """The API tokens kept in `database` (SHA-256 only)."""
    return TokenStore(database)


def pictrs_admin(settings: Settings) -> PictrsAdmin:
    """pict-rs's internal API (listing, purging) with the configured key and timeout;
    PictrsError when `pictrs.api_key` is not set."""
    key = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else ""
    return PictrsAdmin(settings.pictrs.url, key, timeout_s=settings.pictrs.timeout_s)
