"""`warden feeds`: share hash banks with other Wardens, and follow theirs.

Publishing and subscribing are database changes: a running `warden serve`
serves a newly published feed at once and pulls a new subscription at its next
poll. `warden feeds sync` pulls every subscription now, from this process.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from warden.cli.context import database, out, settings_from
from warden.domain.feeds import Category, Trust
from warden.services.alerts import build_alerts, feed_quarantine_alert
from warden.services.factories import bank_store
from warden.services.feeds import FeedService, build_feed_service
from warden.store.feeds import FeedStore

feeds_app = typer.Typer(
    help="Hash feeds between instances: publish banks, subscribe to other Wardens' feeds.",
    no_args_is_help=True,
)


def _service(ctx: typer.Context) -> FeedService:
    db = database(ctx)
    return build_feed_service(settings_from(ctx), FeedStore(db), bank_store(db))


@feeds_app.command("key")
def key(ctx: typer.Context) -> None:
    """This instance's feed key: give the fingerprint to the admins who subscribe."""
    described = _service(ctx).signer.describe()
    out.print(f"fingerprint: {described['fingerprint']}")
    out.print(f"public key:  {described['key']} (ed25519, base64)")
    out.print("served at:   /.well-known/warden-feed-key")


@feeds_app.command("publish")
def publish(
    ctx: typer.Context,
    bank: Annotated[str, typer.Argument(help="The bank to publish (reject or review).")],
    category: Annotated[Category, typer.Option(help="What the bank holds.")],
    name: Annotated[
        str | None, typer.Option("--as", help="Feed name in the URL (default: the bank's).")
    ] = None,
    push: Annotated[
        list[str] | None,
        typer.Option(help="A subscriber's inbox to push to (http://HOST/feeds/v1/inbox); repeat."),
    ] = None,
) -> None:
    """Serve BANK as a signed feed at /feeds/v1/NAME; re-run to change category or pushes.

    The feed holds every hash in the bank now and every later addition and removal,
    signed with this instance's key."""
    feed = _service(ctx).publish(bank, category, name=name, push=push or [])
    out.print(f"published bank {feed.bank} as /feeds/v1/{feed.name} ({feed.category.value})")


@feeds_app.command("unpublish")
def unpublish(
    ctx: typer.Context, feed: Annotated[str, typer.Argument(help="The feed name.")]
) -> None:
    """Stop serving a feed (its log is kept: publishing it again continues it)."""
    FeedStore(database(ctx)).unpublish(feed)
    out.print(f"feed {feed} is no longer served")


@feeds_app.command("subscribe")
def subscribe(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The feed: http(s)://HOST/feeds/v1/FEED.")],
    key: Annotated[
        str, typer.Option("--key", help="The publisher's fingerprint (ed25519:<64 hex>).")
    ],
    bank: Annotated[str, typer.Option(help="The local bank its entries go to.")],
    action: Annotated[
        Trust, typer.Option(help="reject: refuse matches; review: hold them for review.")
    ],
    quorum: Annotated[
        int,
        typer.Option(help="With reject: refuse only when this many publishers list a hash."),
    ] = 1,
) -> None:
    """Follow another Warden's feed; pulled every feeds.poll_interval_s by `warden serve`."""
    sub = _service(ctx).subscribe(url, key, bank, action, quorum)
    trust = f"{sub.trust.value}" + (f" at quorum {sub.quorum}" if sub.quorum > 1 else "")
    out.print(f"subscribed to {sub.url} into bank {sub.bank} ({trust})")


@feeds_app.command("unsubscribe")
def unsubscribe(ctx: typer.Context, url: Annotated[str, typer.Argument()]) -> None:
    """Stop following a feed (entries it added stay in the bank until removed by hand)."""
    FeedStore(database(ctx)).unsubscribe(url.rstrip("/"))
    out.print(f"unsubscribed from {url}")


@feeds_app.command("resume")
def resume(ctx: typer.Context, url: Annotated[str, typer.Argument()]) -> None:
    """Lift a quarantine once the publisher's problem is understood."""
    FeedStore(database(ctx)).resume(url.rstrip("/"))
    out.print(f"{url} resumes at the next poll")


@feeds_app.command("list")
def list_feeds(ctx: typer.Context) -> None:
    """Published feeds and subscriptions, one line each: entries, cursor, state, errors."""
    store = FeedStore(database(ctx))
    for feed in store.published():
        out.print(
            f"published {feed.name}: bank {feed.bank}, {feed.category.value}, "
            f"{feed.head:,} entries, {'served' if feed.active else 'not served'}"
            + (f", pushed to {' '.join(feed.push_to)}" if feed.push_to else "")
        )
    for sub in store.subscriptions():
        trust = sub.trust.value + (f" at quorum {sub.quorum}" if sub.quorum > 1 else "")
        state = "QUARANTINED" if sub.quarantined else "ok"
        out.print(
            f"subscribed {sub.url}: bank {sub.bank}, {trust}, cursor {sub.position.cursor:,}, "
            f"{state}" + (f", last error: {sub.last_error}" if sub.last_error else "")
        )


@feeds_app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Pull every subscription now; exit 1 when any is quarantined or failed."""
    service = _service(ctx)
    alerts = build_alerts(settings_from(ctx))  # a quarantine tells the admins, as in serve

    async def run() -> int:
        if alerts is not None:
            alerts.start()
            service.on_quarantine = feed_quarantine_alert(alerts)
        try:
            return await service.sync_all()
        finally:
            await service.aclose()
            if alerts is not None:
                await alerts.drain()
                await alerts.aclose()

    applied = asyncio.run(run())
    out.print(f"{applied:,} entries applied")
    failed = [s for s in service.feeds.subscriptions() if s.quarantined or s.last_error]
    for sub in failed:
        out.print(f"{sub.url}: {'QUARANTINED: ' if sub.quarantined else ''}{sub.last_error}")
    if failed:
        raise typer.Exit(1)
