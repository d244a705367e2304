"""Building the console: settings and the running services' parts in, a
`ConsoleFeature` out (the one place its objects are made)."""

from __future__ import annotations

from collections.abc import Callable

from warden.adapters.lemmy import LemmyApi
from warden.config import Settings
from warden.media.matcher import BankMatcher
from warden.membership.gate import RuleSource
from warden.services.console import ConsoleFeature, ConsoleService
from warden.services.console_now import NowReader
from warden.services.factories import bank_store, invite_store
from warden.services.flag_chain import FlagChain
from warden.services.scanning import decode_limits
from warden.services.thumbnails import MediaSource, Thumbnails
from warden.store.console import ConsoleStore
from warden.store.database import Database
from warden.store.decisions import DecisionLog
from warden.store.quarantine import EvidenceStore


def build_console(
    settings: Settings,
    database: Database,
    *,
    evidence: EvidenceStore | None,
    lemmy: LemmyApi,
    rules: RuleSource,
    matcher: object,
    refresh_banks: Callable[[], object] = lambda: None,
) -> ConsoleFeature:
    """The console over the running Warden's database, evidence, Lemmy client, rules
    and bank matcher (a `BankMatcher` lets thumbnails check CSAM banks live)."""
    store = ConsoleStore(database)
    decisions = DecisionLog(database)
    banks = bank_store(database)
    invites = invite_store(settings, database)
    key = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else ""
    source = MediaSource(
        evidence, settings.pictrs.url, key, decode_limits(settings), settings.pictrs.timeout_s
    )
    thumbnails = Thumbnails(
        source,
        matcher.match if isinstance(matcher, BankMatcher) else None,
        settings.console.pixel_blocks,
    )
    chain = FlagChain(
        settings,
        decisions=decisions,
        banks=banks,
        invites=invites,
        evidence=evidence,
        source=source,
        lemmy=lemmy,
        refresh_banks=refresh_banks,
    )
    service = ConsoleService(
        settings,
        store=store,
        decisions=decisions,
        banks=banks,
        invites=invites,
        evidence=evidence,
        lemmy=lemmy,
        rules=rules,
        chain=chain,
        thumbnails=thumbnails,
        now=NowReader(settings, store, decisions, banks, evidence),
    )
    return ConsoleFeature(store=store, service=service)
