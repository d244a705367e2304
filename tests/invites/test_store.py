"""The ledger's state on SQLite and a real PostgreSQL: atomic spending, redemption and claims."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from warden.errors import InviteRefused
from warden.membership.invites import InvitePolicy, Rights
from warden.membership.requirements import UserFacts
from warden.store.invites import InviteStore

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def facts(pid: int, name: str, age_days: int = 100) -> UserFacts:
    return UserFacts(pid, name, NOW - timedelta(days=age_days), comments=50, posts=5)


@pytest.fixture
def store(database):
    database.upgrade()
    return InviteStore(database, InvitePolicy(per_period=3, carry_cap=6, max_uses=1))


def test_spend_until_empty_then_refill_next_month(store):
    alice = facts(1, "alice")
    codes = [store.spend(alice, NOW).code for _ in range(3)]
    assert len(set(codes)) == 3
    with pytest.raises(InviteRefused, match="no invites left; 3 more on 2026-06-01"):
        store.spend(alice, NOW)
    assert store.account(alice, NOW + timedelta(days=25)).balance == 3  # June
    actions = [a.action for a in store.audit(1)]
    assert actions.count("create") == 3 and actions.count("refill") == 2


def test_revoke_returns_the_invite_and_voids_the_code(store):
    alice = facts(1, "alice")
    code = store.spend(alice, NOW).code
    assert store.account(alice, NOW).balance == 2
    assert store.revoke(code, 1, NOW, "alice") == 1
    assert store.account(alice, NOW).balance == 3
    with pytest.raises(InviteRefused, match="revoked"):
        store.redeem(code, invitee_id=9, invitee_name="bob", application_id=1, now=NOW)
    with pytest.raises(InviteRefused, match="no such invite of yours"):
        store.revoke(code, 2, NOW, "mallory")  # only its owner (or an admin) may


def test_redemption_builds_the_tree_and_refuses_reuse_and_expiry(store):
    code = store.spend(facts(1, "alice"), NOW).code
    r = store.redeem(code, invitee_id=2, invitee_name="bob", application_id=10, now=NOW)
    assert (r.inviter_id, r.inviter_name) == (1, "alice")
    with pytest.raises(InviteRefused, match="already used"):
        store.redeem(code, invitee_id=3, invitee_name="carol", application_id=11, now=NOW)
    # the same applicant again (a restart): the same answer, no second use
    again = store.redeem(code, invitee_id=2, invitee_name="bob", application_id=10, now=NOW)
    assert again.inviter_id == 1
    late = store.spend(facts(1, "alice"), NOW).code
    with pytest.raises(InviteRefused, match="expired on 2026-05-24"):
        store.redeem(
            late, invitee_id=4, invitee_name="dan", application_id=12, now=NOW + timedelta(days=14)
        )
    tree = store.tree(1)[0]
    assert [n.name for n in tree.walk()] == ["alice", "bob"]


def test_concurrent_redemption_of_one_code_has_exactly_one_winner(store):
    code = store.spend(facts(1, "alice"), NOW).code
    results: list[object] = []
    barrier = threading.Barrier(8)

    def applicant(i: int) -> None:
        barrier.wait()
        try:
            results.append(
                store.redeem(
                    code, invitee_id=100 + i, invitee_name=f"a{i}", application_id=i, now=NOW
                )
            )
        except InviteRefused as exc:
            results.append(exc)

    threads = [threading.Thread(target=applicant, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, InviteRefused)]
    assert len(results) == 8 and len(winners) == 1
    assert [n.person_id for n in store.tree(1)[0].walk()][1:] == [winners[0].invitee_id]  # type: ignore[attr-defined]
    assert store.invite(code).uses == 1  # type: ignore[union-attr]


def test_only_one_worker_claims_an_approval(store):
    code = store.spend(facts(1, "alice"), NOW).code
    store.redeem(code, invitee_id=2, invitee_name="bob", application_id=10, now=NOW)
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def worker(i: int) -> None:
        barrier.wait()
        wins.append(store.claim_approval(2, f"w{i}", NOW))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    store.approved(2, NOW)
    assert not store.claim_approval(2, "late", NOW + timedelta(hours=1))  # done stays done


def test_a_banned_invitee_strikes_its_inviter_once(store):
    code = store.spend(facts(1, "alice"), NOW).code
    store.redeem(code, invitee_id=2, invitee_name="bob", application_id=10, now=NOW)
    bobs_code = store.spend(facts(2, "bob", age_days=40), NOW).code
    outcome = store.record_ban(2, "bob", "spam wave", NOW, "modlog")
    assert outcome is not None and outcome.inviter.strikes == 1
    assert outcome.inviter.rights is Rights.SUSPENDED
    assert store.record_ban(2, "bob", "spam wave", NOW, "modlog") is None  # counted once
    assert store.invite(bobs_code).revoked_at is not None  # type: ignore[union-attr]
    with pytest.raises(InviteRefused, match="until 2026-06-09"):
        store.spend(facts(1, "alice"), NOW)
    tree = store.tree(1)[0]
    assert [(n.name, n.banned) for n in tree.walk()] == [("alice", False), ("bob", True)]
    assert tree.strikes == 1


def test_admin_grant_revoke_and_restore_are_audited(store):
    store.grant(5, "erin", 4, "admin", "moderator thank-you")
    assert store.find("erin").balance == 4  # type: ignore[union-attr]
    store.set_rights(5, "erin", Rights.REVOKED, "admin", "sold invites")
    with pytest.raises(InviteRefused, match="revoked \\(sold invites\\)"):
        store.spend(facts(5, "erin"), NOW)
    store.set_rights(5, "erin", Rights.ACTIVE, "admin", "appeal accepted")
    assert store.spend(facts(5, "erin"), NOW)
    assert [a.action for a in store.audit(5)] == [
        "create",
        "refill",  # the refused spend's refill was rolled back with it
        "rights:active",
        "rights:revoked",
        "grant",
    ]
