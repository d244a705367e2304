"""Building the console: settings and the running services' parts in, a
`ConsoleFeature` out (the one place its objects are made); and the flag chain
it shares with `warden flag`."""

from __future__ import annotations

from collections.abc import Callable

from warden.adapters.lemmy import LemmyApi
from warden.config import Settings
from warden.media.matcher import BankMatcher
from warden.membership.gate import RuleSource
from warden.services.alerts import Alerts
from warden.services.console import ConsoleFeature, ConsoleService
from warden.services.console_now import NowReader
from warden.services.factories import bank_store, invite_store
from warden.services.flag_chain import FlagChain
from warden.services.placement import Placement
from warden.services.scanning import decode_limits
from warden.services.thumbnails import MediaSource, Thumbnails
from warden.store.console import ConsoleStore
from warden.store.database import Database
from warden.store.decisions import DecisionLog
from warden.store.places import PlaceStore
from warden.store.quarantine import EvidenceStore


def media_source(settings: Settings, evidence: EvidenceStore | None) -> MediaSource:
    """Where the console and the flag find a decision's bytes: evidence, then pict-rs."""
    key = settings.pictrs.api_key.get_secret_value() if settings.pictrs.api_key else ""
    return MediaSource(
        evidence, settings.pictrs.url, key, decode_limits(settings), settings.pictrs.timeout_s
    )


def build_flag_chain(
    settings: Settings,
    database: Database,
    *,
    evidence: EvidenceStore | None,
    lemmy: LemmyApi,
    source: MediaSource | None = None,
    refresh_banks: Callable[[], object] = lambda: None,
    alerts: Alerts | None = None,
) -> FlagChain:
    """The one flag chain, for the console and for `warden flag` alike."""
    return FlagChain(
        settings,
        decisions=DecisionLog(database),
        banks=bank_store(database),
        invites=invite_store(settings, database),
        evidence=evidence,
        source=source or media_source(settings, evidence),
        lemmy=lemmy,
        refresh_banks=refresh_banks,
        alerts=alerts,
    )


def build_console(
    settings: Settings,
    database: Database,
    *,
    evidence: EvidenceStore | None,
    lemmy: LemmyApi,
    rules: RuleSource,
    matcher: object,
    refresh_banks: Callable[[], object] = lambda: None,
    alerts: Alerts | None = None,
) -> ConsoleFeature:
    """The console over the running Warden's database, evidence, Lemmy client, rules
    and bank matcher (a `BankMatcher` lets thumbnails check CSAM banks live)."""
    store = ConsoleStore(database)
    decisions = DecisionLog(database)
    banks = bank_store(database)
    invites = invite_store(settings, database)
    places = PlaceStore(database)
    source = media_source(settings, evidence)
    thumbnails = Thumbnails(
        source,
        matcher.match if isinstance(matcher, BankMatcher) else None,
        settings.console.pixel_blocks,
    )
    chain = build_flag_chain(
        settings,
        database,
        evidence=evidence,
        lemmy=lemmy,
        source=source,
        refresh_banks=refresh_banks,
        alerts=alerts,
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
        places=places,
        placement=Placement(
            settings, places=places, console=store, decisions=decisions, lemmy=lemmy
        ),
    )
    return ConsoleFeature(store=store, service=service)
