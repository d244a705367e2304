"""Invites as a service: what a signed-in user may see and do, and the worker.

The sequences that touch both the ledger and Lemmy live here, so the /invites
routes and /authz only parse and answer:

- **create**: spend one invite from the balance; on Lemmy 1.0 the code is a
  native invite link made with the user's own token (spent under a placeholder
  first, renamed to Lemmy's token after; refunded when Lemmy refuses).
- **revoke**: a code of the user's own; a native one is revoked in Lemmy first
  (already gone there is fine); an unused one goes back to the balance.
- **meter**: an invite link made in Lemmy 1.0's own UI (seen at /authz) spends
  from the same balance, under a `lemmy-ui-` placeholder code.

Refusals are `InviteRefused` with the sentence for the person asking.
`InvitesFeature` is the group `Services` holds when `invites.enabled`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from warden.adapters.lemmy import LemmyApi
from warden.errors import InviteRefused, LemmyRefused, UpstreamError
from warden.jobs.invites import InviteWorker
from warden.membership import invites as rules
from warden.membership.gate import utc_now
from warden.membership.invites import Account, Invite
from warden.membership.requirements import UserFacts
from warden.services.signins import Sessions
from warden.store.invites import InviteStore

log = logging.getLogger(__name__)


def lemmy_problem(exc: UpstreamError) -> str:
    """Lemmy's failure in words for the user: its error code, never an address."""
    if isinstance(exc, LemmyRefused) and exc.lemmy_code:
        return f"Lemmy refused ({exc.lemmy_code})."
    return "the instance cannot be reached; try again soon."


@dataclass(frozen=True)
class InviteOverview:
    """What the /invites page shows a signed-in user."""

    account: Account
    codes: list[Invite]
    invitees: list[tuple[int, str, datetime]]
    refusal: str | None  # why a new invite cannot be made now, if it cannot
    native: bool  # Lemmy 1.0: codes are native invite links


class InviteService:
    """The invite sequences over the ledger and the Lemmy API (see the module docstring)."""

    def __init__(self, store: InviteStore, lemmy: LemmyApi) -> None:
        self.store = store
        self.lemmy = lemmy

    @property
    def native(self) -> bool:
        return self.lemmy.version == "v4"

    async def overview(self, facts: UserFacts, now: datetime) -> InviteOverview:
        account = await asyncio.to_thread(self.store.account, facts, now)
        codes = await asyncio.to_thread(self.store.invites_of, facts.person_id)
        invitees = await asyncio.to_thread(self.store.invitees_of, facts.person_id)
        refusal = rules.creation_refusal(account, self.store.policy, now, facts)
        return InviteOverview(account, list(codes), list(invitees), refusal, self.native)

    async def create(self, facts: UserFacts, token: str) -> None:
        """Spend one invite (InviteRefused when the rules or Lemmy refuse)."""
        now = utc_now()
        placeholder = f"pending-{secrets.token_hex(8)}" if self.native else None
        invite = await asyncio.to_thread(
            self.store.spend, facts, now, code=placeholder, native=self.native
        )
        if not self.native:
            return
        try:
            link = await self.lemmy.create_invite(token, invite.max_uses, invite.expires_at)
        except UpstreamError as exc:  # LemmyRefused included
            await asyncio.to_thread(
                self.store.refund, facts.person_id, invite.code, facts.name, exc.message
            )
            raise InviteRefused(
                f"Lemmy did not create the invite: {lemmy_problem(exc)}", code="lemmy_refused"
            ) from exc
        await asyncio.to_thread(self.store.rename_code, invite.code, link.token)
        await asyncio.to_thread(
            self.store.record_native, link.token, link.expires_at, link.max_uses
        )

    async def revoke(self, facts: UserFacts, token: str, code: str) -> int:
        """Revoke one of the user's codes; how many invites went back to the balance."""
        invite = await asyncio.to_thread(self.store.invite, code)
        if invite is None or invite.inviter_id != facts.person_id:
            raise InviteRefused("There is no such invite of yours.", code="not_found")
        if invite.native:
            try:
                await self.lemmy.revoke_invite(token, code)
            except LemmyRefused as exc:
                if exc.lemmy_code != "invalid_invite_token":  # already gone in Lemmy: fine
                    raise InviteRefused(
                        f"Lemmy did not revoke the invite: {lemmy_problem(exc)}",
                        code="lemmy_refused",
                    ) from exc
            except UpstreamError as exc:
                raise InviteRefused(
                    f"Lemmy did not revoke the invite: {lemmy_problem(exc)}",
                    code="lemmy_unavailable",
                ) from exc
        returned: int = await asyncio.to_thread(
            self.store.revoke, code, facts.person_id, utc_now(), facts.name
        )
        return returned

    async def meter(self, facts: UserFacts) -> None:
        """Spend one invite for a link Lemmy 1.0 makes itself (InviteRefused when none
        is left). Lemmy makes the token after /authz answers, so the spend is recorded
        under a placeholder; a link revoked in Lemmy's own UI is not refunded."""
        await asyncio.to_thread(
            self.store.spend,
            facts,
            utc_now(),
            code=f"lemmy-ui-{uuid.uuid4().hex}",
            native=True,
        )


@dataclass
class InvitesFeature:
    """Everything invites need, present only when `invites.enabled`."""

    store: InviteStore
    service: InviteService
    sessions: Sessions  # /invites sign-ins, in memory
    worker: InviteWorker | None  # None without `lemmy.bot_token`: no application worker
