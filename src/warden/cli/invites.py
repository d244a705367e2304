"""`warden invites ...`: the invite tree, accountability and the ledger, for admins."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from warden.adapters.lemmy import LemmyApi
from warden.cli.context import bot_token, database, me, out, settings_from
from warden.errors import InputError, NotFound
from warden.jobs.invites import InviteWorker, subtree
from warden.jobs.invites import ban_subtree as ban_all
from warden.membership.gate import utc_now
from warden.membership.invites import Account, Rights, TreeNode
from warden.services.factories import invite_store, lemmy_client
from warden.store.invites import InviteStore

invites_app = typer.Typer(
    help="Invites: the tree, bans of whole subtrees, balances and rights.", no_args_is_help=True
)
REASON = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]
USER = Annotated[str, typer.Argument(help="Lemmy user name (or person id).")]


def _store(ctx: typer.Context) -> InviteStore:
    return invite_store(settings_from(ctx), database(ctx))


def _lemmy(ctx: typer.Context) -> tuple[LemmyApi, str]:
    """A Lemmy client and the bot token it acts with (ConfigError when none is set)."""
    settings = settings_from(ctx)
    token = bot_token(settings)
    return lemmy_client(settings), token


def _person(ctx: typer.Context, store: InviteStore, who: str) -> tuple[int, str]:
    """A person id and name: from the ledger, else asked of Lemmy with the bot token."""
    account = store.find(who)
    if account is not None:
        return account.person_id, account.name
    lemmy, token = _lemmy(ctx)

    async def ask() -> tuple[int, str]:
        try:
            facts = await lemmy.person(who, token)
        finally:
            await lemmy.http.aclose()
        return facts.person_id, facts.name

    return asyncio.run(ask())


def _label(node: TreeNode) -> str:
    mark = f" [red]BANNED[/red] ({node.ban_reason})" if node.banned else ""
    strikes = f" [yellow]{node.strikes} strike(s)[/yellow]" if node.strikes else ""
    return f"{node.name}{mark}{strikes}"


def _grow(branch: Tree, node: TreeNode) -> None:
    for child in node.children or ():
        _grow(branch.add(_label(child)), child)


@invites_app.command("tree")
def tree(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="Only this user's subtree.")] = None,
) -> None:
    """Print the invite tree (or one user's subtree) with ban marks and strikes."""
    store = _store(ctx)
    root = _person(ctx, store, user)[0] if user else None
    trees = store.tree(root)
    if not trees:
        out.print("nobody has invited anyone yet")
        return
    for node in trees:
        top = Tree(_label(node))
        _grow(top, node)
        out.print(top)


@invites_app.command("ban-subtree")
def ban_subtree(
    ctx: typer.Context,
    user: USER,
    reason: REASON,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (after the list is printed).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List who would be banned; ban nobody.")
    ] = False,
    remove_data: Annotated[
        bool, typer.Option("--remove-data", help="Also remove their posts and comments.")
    ] = False,
) -> None:
    """Ban a user and everyone they invited, recursively, through Lemmy (for spambot waves)."""
    if not reason.strip():
        raise InputError("--reason is required (it goes to Lemmy's modlog)")
    store = _store(ctx)
    root_id, root_name = _person(ctx, store, user)
    nodes = subtree(store, root_id) or []
    todo = [n for n in nodes if not n.banned]
    table = Table("person", "id", "already banned")
    for node in nodes or []:
        table.add_row(node.name, str(node.person_id), "yes" if node.banned else "")
    if not nodes:
        table.add_row(root_name, str(root_id), "")
        todo = []
    out.print(table)
    out.print(f"{len(todo)} would be banned with reason: {reason!r}")
    if dry_run or not todo:
        return
    if not yes and not typer.confirm(f"Ban these {len(todo)} accounts on Lemmy?"):
        raise typer.Exit(1)
    lemmy, token = _lemmy(ctx)

    async def go() -> tuple[list[TreeNode], list[str]]:
        try:
            return await ban_all(
                store, lemmy, token, root_id, reason, actor=me(), remove_data=remove_data
            )
        finally:
            await lemmy.http.aclose()

    banned, errors = asyncio.run(go())
    out.print(f"banned {len(banned)}: {', '.join(n.name for n in banned) or '-'}")
    for line in errors:
        out.print(f"  [red]{line}[/red]")
    if errors:
        raise typer.Exit(1)


def _show(account: Account) -> None:
    state = account.rights.value
    if account.suspended_until:
        state += f" until {account.suspended_until:%Y-%m-%d}"
    if account.rights_reason:
        state += f" ({account.rights_reason})"
    out.print(
        f"{account.name} (#{account.person_id}): balance {account.balance}, rights {state},"
        f" strikes {account.strikes}{', queued for review' if account.review_queued else ''}"
    )


@invites_app.command("balance")
def balance(ctx: typer.Context, user: USER) -> None:
    """A user's balance, rights, strikes, codes and invitees."""
    store = _store(ctx)
    account = store.find(user)
    if account is None:
        raise NotFound(f"{user} has no invite account yet (it is made on first use)")
    _show(account)
    now = utc_now()
    for invite in store.invites_of(account.person_id):
        out.print(
            f"  code {invite.code[:6]}…  {invite.state(now).value:8} expires {invite.expires_at:%Y-%m-%d}"
        )
    for _, name, when in store.invitees_of(account.person_id):
        out.print(f"  invited {name} on {when:%Y-%m-%d}")


@invites_app.command("grant")
def grant(
    ctx: typer.Context,
    user: USER,
    count: Annotated[int, typer.Argument(help="Invites to add (negative to take).")],
    reason: REASON = "",
) -> None:
    """Add invites to a user's balance."""
    store = _store(ctx)
    pid, name = _person(ctx, store, user)
    _show(store.grant(pid, name, count, me(), reason))


@invites_app.command("revoke-rights")
def revoke_rights(ctx: typer.Context, user: USER, reason: REASON = "") -> None:
    """Take away a user's right to invite (recorded with the reason)."""
    store = _store(ctx)
    pid, name = _person(ctx, store, user)
    _show(store.set_rights(pid, name, Rights.REVOKED, me(), reason))


@invites_app.command("restore-rights")
def restore_rights(ctx: typer.Context, user: USER, reason: REASON = "") -> None:
    """Give a user back the right to invite (and clear a suspension or review flag)."""
    store = _store(ctx)
    pid, name = _person(ctx, store, user)
    _show(store.set_rights(pid, name, Rights.ACTIVE, me(), reason))


@invites_app.command("review")
def review(ctx: typer.Context) -> None:
    """Inviters queued for admin review (their rights were revoked by strikes)."""
    queued = _store(ctx).review_queue()
    for account in queued:
        _show(account)
    if not queued:
        out.print("nobody is queued for review")


@invites_app.command("audit")
def audit(
    ctx: typer.Context, user: Annotated[str | None, typer.Argument()] = None, limit: int = 50
) -> None:
    """Recent changes to balances, rights and the tree, and why applications were refused."""
    store = _store(ctx)
    pid = _person(ctx, store, user)[0] if user else None
    table = Table("time", "actor", "action", "person", "detail")
    for entry in store.audit(pid, limit):
        table.add_row(
            f"{entry.at:%Y-%m-%d %H:%M}",
            entry.actor,
            entry.action,
            str(entry.person_id or ""),
            str(entry.detail),
        )
    out.print(table)


@invites_app.command("worker")
def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
) -> None:
    """Run the application/ban/tree worker (`warden serve` runs it too when invites are on)."""
    settings = settings_from(ctx)
    store = _store(ctx)
    lemmy, token = _lemmy(ctx)
    job = InviteWorker(store, lemmy, token, settings.invites)

    async def go() -> None:
        try:
            if once:
                report = await job.run_once()
                out.print(
                    f"approved {len(report.approved)} {report.approved}; denied {len(report.denied)};"
                    f" left for a human {len(report.left)}; strikes {report.strikes}; new edges {report.edges}"
                )
                for line in report.errors:
                    out.print(f"  [red]{line}[/red]")
                if report.errors:
                    raise typer.Exit(1)
            else:
                await job.run_forever(asyncio.Event())
        finally:
            await lemmy.http.aclose()

    asyncio.run(go())
