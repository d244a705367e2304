"""The ledger's rules with a controllable clock: refills, carry-over, expiry, revocation, strikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from warden.membership import invites as inv
from warden.membership.invites import Account, InvitePolicy, Period, Rights
from warden.membership.requirements import UserFacts, parse_tree

JAN = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
FEB = datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC)
POLICY = InvitePolicy(per_period=3, carry_cap=5)


def test_first_grant_then_nothing_until_the_period_turns():
    account, granted = inv.refill(Account(1, "a"), POLICY, JAN, eligible=True)
    assert (account.balance, granted) == (3, 3)
    again, granted = inv.refill(account, POLICY, JAN, eligible=True)
    assert (again.balance, granted) == (3, 0)
    # one second later it is February: a new grant, capped at carry_cap
    feb, granted = inv.refill(again, POLICY, FEB, eligible=True)
    assert (feb.balance, granted) == (5, 2)


def test_unused_invites_carry_over_only_up_to_the_cap():
    account = Account(1, "a", balance=0, granted_through=inv.period_index(JAN, Period.MONTH) - 6)
    refilled, granted = inv.refill(account, POLICY, JAN, eligible=True)
    assert refilled.balance == 5 and granted == 5  # six missed months, still only the cap


def test_an_admin_grant_above_the_cap_is_kept():
    rich = Account(1, "a", balance=9, granted_through=inv.period_index(JAN, Period.MONTH))
    after, granted = inv.refill(rich, POLICY, FEB, eligible=True)
    assert (after.balance, granted) == (9, 0)


def test_ineligible_users_get_nothing_and_no_backlog():
    start = Account(1, "a", granted_through=inv.period_index(JAN, Period.MONTH) - 3)
    skipped, granted = inv.refill(start, POLICY, JAN, eligible=False)
    assert (skipped.balance, granted) == (0, 0)
    later, granted = inv.refill(skipped, POLICY, FEB, eligible=True)
    assert (later.balance, granted) == (3, 3)  # one period's grant, not four


def test_weekly_periods_turn_on_monday():
    weekly = InvitePolicy(per_period=1, period=Period.WEEK)
    sunday = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # a Sunday
    monday = sunday + timedelta(hours=1)
    assert inv.period_index(monday, Period.WEEK) == inv.period_index(sunday, Period.WEEK) + 1
    assert inv.period_start(inv.period_index(monday, Period.WEEK), Period.WEEK) == monday
    assert weekly.next_refill(sunday) == monday


def test_codes_are_long_random_and_found_in_prose():
    codes = {inv.new_code() for _ in range(1000)}
    assert len(codes) == 1000 and all(len(c) == 22 for c in codes)  # 128 bits, url-safe
    code = next(iter(codes))
    assert inv.codes_in(f"Hi! My friend gave me {code}, thanks.") == [code]
    assert inv.codes_in("no code here, just words") == []


def test_expiry_and_use_and_revocation_states():
    account = Account(1, "a", balance=1)
    invite = inv.issue(account, POLICY, JAN)
    assert invite.expires_at == JAN + timedelta(days=14)
    assert inv.redemption_refusal(invite, JAN + timedelta(days=13)) is None
    assert "expired" in (inv.redemption_refusal(invite, JAN + timedelta(days=14)) or "")
    used = inv.Invite(**{**invite.__dict__, "uses": 1})
    assert inv.redemption_refusal(used, JAN) == "the invite code was already used"
    assert inv.refund_on_revoke(invite, JAN) == 1
    assert inv.refund_on_revoke(used, JAN) == 0  # a used code returns nothing
    assert inv.refund_on_revoke(invite, JAN + timedelta(days=15)) == 0  # nor an expired one
    assert inv.redemption_refusal(None, JAN) == "the invite code is not known"


def test_creation_refusals_explain_themselves():
    facts = UserFacts(1, "a", JAN - timedelta(days=3), comments=1, posts=0)
    strict = InvitePolicy(eligibility=parse_tree({"all": ["account_age >= 30d"]}, where="t"))
    message = inv.creation_refusal(Account(1, "a", balance=2), strict, JAN, facts)
    assert message is not None and "30 days old; yours is 3 days" in message
    empty = inv.creation_refusal(Account(1, "a", balance=0), POLICY, JAN)
    assert empty == "You have no invites left; 3 more on 2026-02-01."
    assert inv.creation_refusal(Account(1, "a", balance=1), POLICY, JAN) is None


def test_strikes_suspend_then_revoke_as_configured():
    now = JAN
    account = Account(1, "inviter", balance=3)
    one, fired = inv.strike(account, POLICY, now, "spam")
    assert [f.action for f in fired] == [inv.StrikeAction.SUSPEND]
    assert one.rights is Rights.SUSPENDED and one.suspended_until == now + timedelta(days=30)
    assert "until 2026-03-02" in (inv.creation_refusal(one, POLICY, now) or "")
    assert inv.effective_rights(one, now + timedelta(days=30)) is Rights.ACTIVE
    two, fired = inv.strike(one, POLICY, now, "spam")
    assert fired == [] and two.strikes == 2
    three, fired = inv.strike(two, POLICY, now, "bot wave")
    assert three.rights is Rights.REVOKED and three.review_queued
    assert "revoked (3 strikes; last: bot wave)" in (inv.creation_refusal(three, POLICY, now) or "")


def test_strike_steps_from_config_are_checked():
    with pytest.raises(ValueError, match="days >= 1"):
        inv.parse_strikes([{"at": 1, "action": "suspend"}])
    steps = inv.parse_strikes(
        [{"at": 3, "action": "revoke"}, {"at": 1, "action": "suspend", "days": 7}]
    )
    assert [s.at for s in steps] == [1, 3]


def test_tree_from_edges():
    edges = [(2, 1), (3, 1), (4, 2), (5, 4), (7, 6)]
    names = {i: f"u{i}" for i in range(1, 8)}
    roots = inv.build_tree(edges, names, None)
    assert [r.name for r in roots] == ["u1", "u6"]
    sub = inv.build_tree(edges, names, 2)[0]
    assert [n.name for n in sub.walk()] == ["u2", "u4", "u5"]
