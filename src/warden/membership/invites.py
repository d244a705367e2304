"""Invites: the rules of the ledger, free of storage and of Lemmy.

Why a ledger and not Lemmy 1.0's own invite links alone: Lemmy caps how many
links a user may hold at once, but has no refill per period, no eligibility,
and no consequence for the inviter when an invitee turns out to be a spambot.
This module decides those things; `store/invites/` keeps the state and makes
each change atomic; the worker and the web page only call the two.

Everything takes `now` as an argument, so tests drive the calendar.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from warden.membership.requirements import Condition, UserFacts

#: 16 random bytes: 128 bits, above the 96 the design asks for; URL-safe text.
CODE_BYTES = 16
#: How a code looks (22 URL-safe base64 characters), so one can be found in free text.
CODE_PATTERN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{22})(?![A-Za-z0-9_-])")


def new_code() -> str:
    """An unguessable invite code."""
    return secrets.token_urlsafe(CODE_BYTES)


def codes_in(text: str) -> list[str]:
    """Every code-shaped token in an application answer, in order (people add prose)."""
    return CODE_PATTERN.findall(text or "")


class Period(StrEnum):
    MONTH = "month"
    WEEK = "week"


def period_index(when: datetime, period: Period) -> int:
    """A number that grows by one at each period boundary (UTC calendar months, ISO weeks)."""
    when = when.astimezone(UTC)
    if period is Period.MONTH:
        return when.year * 12 + when.month - 1
    return (when.date().toordinal() - 1) // 7  # 0001-01-01 was a Monday


def period_start(index: int, period: Period) -> datetime:
    """When period `index` begins (UTC)."""
    if period is Period.MONTH:
        return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    start = datetime.fromordinal(index * 7 + 1)
    return start.replace(tzinfo=UTC)


class Rights(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # until a date, after strikes
    REVOKED = "revoked"  # until an admin restores them


class StrikeAction(StrEnum):
    SUSPEND = "suspend"  # no new invites for `days`
    REVOKE = "revoke"  # invite rights revoked, inviter queued for admin review


@dataclass(frozen=True)
class StrikeStep:
    """What happens when an inviter reaches `at` strikes."""

    at: int
    action: StrikeAction
    days: int = 0


@dataclass(frozen=True)
class InvitePolicy:
    per_period: int = 3
    period: Period = Period.MONTH
    carry_cap: int = 6  # the balance a refill never pushes past
    expiry: timedelta = timedelta(days=14)
    max_uses: int = 1
    eligibility: Condition | None = None  # None: every local account is eligible
    strikes: tuple[StrikeStep, ...] = (
        StrikeStep(1, StrikeAction.SUSPEND, 30),
        StrikeStep(3, StrikeAction.REVOKE),
    )

    def next_refill(self, now: datetime) -> datetime:
        return period_start(period_index(now, self.period) + 1, self.period)


@dataclass(frozen=True)
class Account:
    """One inviter's state."""

    person_id: int
    name: str
    balance: int = 0
    granted_through: int | None = None  # the last period whose grant was made
    rights: Rights = Rights.ACTIVE
    rights_reason: str | None = None
    suspended_until: datetime | None = None
    strikes: int = 0
    review_queued: bool = False


def refill(
    account: Account, policy: InvitePolicy, now: datetime, *, eligible: bool
) -> tuple[Account, int]:
    """Grant the invites due since the last grant; returns the account and how many.

    Each period not yet granted adds `per_period`, but a refill never lifts the
    balance above `carry_cap` (an admin grant may, and is kept). A user who is
    not eligible gets nothing, and the periods pass: becoming eligible later
    starts with the current period's grant, not a backlog.
    """
    current = period_index(now, policy.period)
    last = account.granted_through
    if last is not None and last >= current:
        return account, 0
    if not eligible:
        return replace(account, granted_through=current), 0
    periods = 1 if last is None else current - last
    target = min(account.balance + periods * policy.per_period, policy.carry_cap)
    balance = max(account.balance, target)
    return replace(account, balance=balance, granted_through=current), balance - account.balance


def effective_rights(account: Account, now: datetime) -> Rights:
    """A suspension that has run out no longer counts."""
    if (
        account.rights is Rights.SUSPENDED
        and account.suspended_until is not None
        and now >= account.suspended_until
    ):
        return Rights.ACTIVE
    return account.rights


def creation_refusal(
    account: Account, policy: InvitePolicy, now: datetime, facts: UserFacts | None = None
) -> str | None:
    """Why this account may not create an invite now, in words; None when it may."""
    rights = effective_rights(account, now)
    if rights is Rights.REVOKED:
        why = f" ({account.rights_reason})" if account.rights_reason else ""
        return f"Your invite rights were revoked{why}; an admin can restore them."
    if rights is Rights.SUSPENDED and account.suspended_until is not None:
        return (
            f"You cannot create invites until {account.suspended_until:%Y-%m-%d}"
            " because someone you invited was banned."
        )
    if policy.eligibility is not None and facts is not None:
        missing = policy.eligibility.missing(facts, now)
        if missing:
            return "You cannot invite people yet: " + "; ".join(missing) + "."
    if account.balance <= 0:
        return (
            f"You have no invites left; {policy.per_period} more on"
            f" {policy.next_refill(now):%Y-%m-%d}."
        )
    return None


def is_eligible(policy: InvitePolicy, facts: UserFacts, now: datetime) -> bool:
    if facts.banned:
        return False
    return policy.eligibility is None or policy.eligibility.holds(facts, now)


class CodeState(StrEnum):
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Invite:
    code: str
    inviter_id: int
    created_at: datetime
    expires_at: datetime
    max_uses: int = 1
    uses: int = 0
    revoked_at: datetime | None = None
    native: bool = False  # a Lemmy 1.0 invite link: Lemmy redeems it, Warden meters it

    def state(self, now: datetime) -> CodeState:
        if self.revoked_at is not None:
            return CodeState.REVOKED
        if self.uses >= self.max_uses:
            return CodeState.USED
        if now >= self.expires_at:
            return CodeState.EXPIRED
        return CodeState.ACTIVE


def issue(account: Account, policy: InvitePolicy, now: datetime, code: str | None = None) -> Invite:
    """A new invite from this account (the caller has checked `creation_refusal`)."""
    return Invite(
        code=code or new_code(),
        inviter_id=account.person_id,
        created_at=now,
        expires_at=now + policy.expiry,
        max_uses=policy.max_uses,
    )


def redemption_refusal(invite: Invite | None, now: datetime) -> str | None:
    """Why a code cannot be redeemed, as a short phrase an applicant can read."""
    if invite is None:
        return "the invite code is not known"
    state = invite.state(now)
    if state is CodeState.ACTIVE:
        return None
    return {
        CodeState.USED: "the invite code was already used",
        CodeState.EXPIRED: f"the invite code expired on {invite.expires_at:%Y-%m-%d}",
        CodeState.REVOKED: "the invite code was revoked by its owner",
    }[state]


def refund_on_revoke(invite: Invite, now: datetime) -> int:
    """Invites returned to the inviter when a code is revoked: its unused uses."""
    if invite.revoked_at is not None or invite.state(now) is not CodeState.ACTIVE:
        return 0
    return invite.max_uses - invite.uses


def strike(
    account: Account, policy: InvitePolicy, now: datetime, reason: str
) -> tuple[Account, list[StrikeStep]]:
    """One more strike; returns the account with the consequences applied and which steps fired."""
    count = account.strikes + 1
    fired = [step for step in policy.strikes if step.at == count]
    updated = replace(account, strikes=count)
    for step in fired:
        if step.action is StrikeAction.REVOKE:
            updated = replace(
                updated,
                rights=Rights.REVOKED,
                rights_reason=f"{count} strikes; last: {reason}",
                review_queued=True,
            )
        elif effective_rights(updated, now) is not Rights.REVOKED:
            until = now + timedelta(days=step.days)
            if updated.suspended_until is None or until > updated.suspended_until:
                updated = replace(
                    updated,
                    rights=Rights.SUSPENDED,
                    rights_reason=reason,
                    suspended_until=until,
                )
    return updated, fired


def parse_strikes(rows: Sequence[object]) -> tuple[StrikeStep, ...]:
    """Strike steps from config: `{at = 1, action = "suspend", days = 30}` tables."""
    steps = []
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"a strike step must be a table, not {row!r}")
        step = StrikeStep(int(row["at"]), StrikeAction(row["action"]), int(row.get("days", 0)))
        if step.at < 1 or (step.action is StrikeAction.SUSPEND and step.days < 1):
            raise ValueError(f"strike step {row!r}: `at` >= 1, and a suspension needs days >= 1")
        steps.append(step)
    return tuple(sorted(steps, key=lambda s: s.at))


@dataclass
class TreeNode:
    """One person in the invite tree, with whom they invited."""

    person_id: int
    name: str
    banned: bool = False
    ban_reason: str | None = None
    strikes: int = 0
    children: list[TreeNode] | None = None

    def walk(self) -> list[TreeNode]:
        """This node and every descendant, parents first."""
        out = [self]
        for child in self.children or ():
            out.extend(child.walk())
        return out


def build_tree(
    edges: Sequence[tuple[int, int]], names: dict[int, str], root: int | None
) -> list[TreeNode]:
    """Trees from (invitee, inviter) edges: under `root`, or every tree when None.

    Cycles cannot come from redemption (an account is invited once, after it
    exists), but a hand-edited database should not hang the CLI: each person
    appears once.
    """
    children: dict[int, list[int]] = {}
    invited: set[int] = set()
    for invitee, inviter in edges:
        children.setdefault(inviter, []).append(invitee)
        invited.add(invitee)
    seen: set[int] = set()

    def node(pid: int) -> TreeNode:
        seen.add(pid)
        kids = [node(c) for c in sorted(children.get(pid, ())) if c not in seen]
        return TreeNode(pid, names.get(pid, f"#{pid}"), children=kids)

    if root is not None:
        return [node(root)]
    roots = sorted(p for p in children if p not in invited)
    return [node(r) for r in roots]
