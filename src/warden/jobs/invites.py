"""The invite worker: registration applications, bans from the modlog, the 1.0 tree.

One pass (`run_once`) does three things with the bot's admin token:

1. **Applications** (Lemmy 0.19 `RequireApplication`, or 1.0 in the same mode):
   every unread application whose answer holds a valid code is redeemed
   (the ledger's conditional update decides who wins), claimed, and approved;
   the rest are denied or left for a human, as configured. One application is
   one guess: only the first code-shaped word of the answer is tried, so an
   answer stuffed with candidate codes tries one. A denial gives the same
   neutral `invites.deny_reason` whatever was wrong (unknown, used, expired,
   revoked, no code), so it does not tell a guesser which codes exist; what
   was wrong goes to Warden's invite audit log (`warden invites audit`).
   Idempotent: a restart finds the redemption and approves again; a second
   worker loses the claim and does nothing.
2. **Bans**: the modlog's site bans since the last one seen; each banned
   invitee gives its inviter one strike, with the configured consequence.
3. **Tree** (Lemmy 1.0): `invited_by_local_user_id` of every local user
   becomes an edge of the tree, for invites Lemmy redeemed natively.

`warden serve` runs passes every `invites.poll_s`; `warden invites worker
--once` runs one (for cron, or to see what it would do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from warden.adapters.lemmy.client import Application, LemmyApi
from warden.config import InviteSettings
from warden.errors import InviteRefused, UpstreamError
from warden.membership.gate import utc_now
from warden.membership.invites import TreeNode, codes_in
from warden.store.invites import InviteStore, Redemption

log = logging.getLogger(__name__)

BAN_CURSOR = "modlog_ban"


@dataclass
class PassReport:
    approved: list[str] = field(default_factory=list)
    denied: list[tuple[str, str]] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)
    strikes: list[tuple[str, str, int]] = field(default_factory=list)  # inviter, invitee, count
    edges: int = 0
    errors: list[str] = field(default_factory=list)


class InviteWorker:
    def __init__(
        self,
        store: InviteStore,
        lemmy: LemmyApi,
        bot_token: str,
        settings: InviteSettings,
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.lemmy = lemmy
        self.token = bot_token
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.clock = clock

    async def run_once(self) -> PassReport:
        report = PassReport()
        for step in (self.applications_once, self.bans_once, self.tree_once):
            try:
                await step(report)
            except UpstreamError as exc:
                report.errors.append(f"{step.__name__}: {exc.message}")
                log.warning("invite worker: %s: %s", step.__name__, exc.message)
        return report

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("invite worker pass failed; trying again next poll")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_s)

    # -- applications ----------------------------------------------------------

    async def applications_once(self, report: PassReport) -> None:
        # oldest first (Lemmy lists newest first): when two applicants give the same
        # code, the one who applied first gets it
        applications = await self.lemmy.applications(self.token)
        for application in sorted(applications, key=lambda a: a.id):
            await self._application(application, report)

    async def _redeem(self, application: Application) -> tuple[Redemption | None, str]:
        """The redemption of the answer's first code, or why there is none (for the
        audit log and the admin's report, never for the applicant)."""
        codes = codes_in(application.answer)
        if not codes:
            return None, "the answer holds no invite code"
        try:
            redemption = await asyncio.to_thread(
                self.store.redeem,
                codes[0],  # one application, one guess
                invitee_id=application.person_id,
                invitee_name=application.name,
                application_id=application.id,
                now=self.clock(),
            )
        except InviteRefused as exc:
            extra = len(codes) - 1
            more = f" ({extra} more code-shaped words not tried)" if extra else ""
            return None, exc.message + more
        return redemption, ""

    async def _application(self, application: Application, report: PassReport) -> None:
        redemption, problem = await self._redeem(application)
        if redemption is None:
            await asyncio.to_thread(
                self.store.note_refused_application,
                application.id,
                application.person_id,
                application.name,
                problem,
                codes_in(application.answer),
            )
            if self.settings.on_invalid_code == "deny":
                reason = self.settings.deny_reason  # the same whatever was wrong
                await self.lemmy.decide_application(self.token, application.id, False, reason)
                report.denied.append((application.name, problem))
                log.info(
                    "application %s of %s denied: %s", application.id, application.name, problem
                )
            else:
                report.left.append((application.name, problem))
            return
        now = self.clock()
        if not await asyncio.to_thread(
            self.store.claim_approval, application.person_id, self.worker_id, now
        ):
            return  # another worker is approving it, or already did
        try:
            await self.lemmy.decide_application(self.token, application.id, True)
        except UpstreamError:  # LemmyError and LemmyRefused included
            await asyncio.to_thread(self.store.release_claim, application.person_id)
            raise
        await asyncio.to_thread(self.store.approved, application.person_id, self.clock())
        report.approved.append(application.name)
        log.info(
            "application %s of %s approved, invited by %s",
            application.id,
            application.name,
            redemption.inviter_name,
        )

    # -- bans and strikes ------------------------------------------------------

    async def bans_once(self, report: PassReport) -> None:
        after = int(await asyncio.to_thread(self.store.cursor, BAN_CURSOR) or 0)
        events = await self.lemmy.bans(self.token, after)
        for event in events:
            if event.local:
                if event.banned:
                    outcome = await asyncio.to_thread(
                        self.store.record_ban,
                        event.person_id,
                        event.name,
                        event.reason or "banned",
                        self.clock(),
                        "modlog",
                    )
                    if outcome is not None:
                        report.strikes.append(
                            (outcome.inviter.name, event.name, outcome.inviter.strikes)
                        )
                else:
                    await asyncio.to_thread(self.store.record_unban, event.person_id, "modlog")
            await asyncio.to_thread(self.store.set_cursor, BAN_CURSOR, str(event.id))

    # -- the tree on Lemmy 1.0 ---------------------------------------------------

    async def tree_once(self, report: PassReport) -> None:
        if self.lemmy.version != "v4":
            return
        users = await self.lemmy.local_users(self.token)
        by_local = {u.local_user_id: u for u in users}
        for user in users:
            await asyncio.to_thread(
                self.store.set_local_user, user.person_id, user.name, user.local_user_id
            )
        for user in users:
            inviter = by_local.get(user.invited_by_local_user_id or -1)
            if inviter is None:
                continue
            added = await asyncio.to_thread(
                self.store.add_edge,
                user.person_id,
                user.name,
                inviter.person_id,
                inviter.name,
                self.clock(),
            )
            report.edges += int(added)


def subtree(store: InviteStore, root_id: int) -> list[TreeNode]:
    """The root and everyone below it, parents first."""
    trees = store.tree(root_id)
    return trees[0].walk() if trees else []


async def ban_subtree(
    store: InviteStore,
    lemmy: LemmyApi,
    token: str,
    root_id: int,
    reason: str,
    *,
    actor: str,
    remove_data: bool = False,
    clock: Callable[[], datetime] = utc_now,
    on_ban: Callable[[TreeNode], None] = lambda node: None,
) -> tuple[list[TreeNode], list[str]]:
    """Ban the root and every descendant not banned yet, through Lemmy; each ban is
    recorded (and strikes the inviter) as Warden's own ban action. Returns the banned
    and the errors; a failure on one person does not stop the others."""
    banned: list[TreeNode] = []
    errors: list[str] = []
    for node in subtree(store, root_id):
        if node.banned:
            continue
        try:
            await lemmy.ban(token, node.person_id, reason, remove_data)
        except UpstreamError as exc:  # LemmyRefused included
            errors.append(f"{node.name}: {exc.message}")
            continue
        await asyncio.to_thread(store.record_ban, node.person_id, node.name, reason, clock(), actor)
        banned.append(node)
        on_ban(node)
    return banned, errors
