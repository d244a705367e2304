"""The invite ledger: its tables and its atomic operations, split by concern.

Every change that matters under concurrency is one conditional UPDATE whose
row count says who won, inside a transaction that also writes the audit row:

- spending an invite: `balance = balance - 1 WHERE balance > 0`;
- redeeming a code: `uses = uses + 1 WHERE uses < max_uses AND not revoked AND
  not expired`, together with the tree edge, whose invitee is the primary key
  (an account is invited once) and whose application id is unique;
- claiming an approval: `approving = token WHERE approved_at IS NULL AND
  approving IS NULL` (or a stale claim), so two workers never both approve.

That works the same on SQLite (one writer at a time) and PostgreSQL (row
locks), and the tests run it on both. The rules themselves (refill, strikes,
refusals) are `membership/invites.py`; this package only keeps state:

- `tables`: the rows, and their conversion to the domain's `Account`/`Invite`;
- `ledger`: `InviteLedger`, the base every concern shares (database, policy,
  audit rows, accounts, reads, cursors);
- `spending`, `redemption`, `accountability`: one class each, over that base.

`InviteStore` joins them; code that needs only one concern may be typed
against that class alone.
"""

from __future__ import annotations

from warden.store.invites.accountability import InviteAccountability, StrikeOutcome
from warden.store.invites.ledger import AuditEntry, InviteLedger
from warden.store.invites.redemption import InviteRedemptions, Redemption
from warden.store.invites.spending import InviteSpending
from warden.store.invites.tables import (
    InviteAccountRow,
    InviteAuditRow,
    InviteCodeRow,
    InviteCursorRow,
    InviteEdgeRow,
    InviteStrikeRow,
)


class InviteStore(InviteSpending, InviteRedemptions, InviteAccountability):
    """The whole ledger. Blocking: call from a worker thread in async code."""


__all__ = [
    "AuditEntry",
    "InviteAccountRow",
    "InviteAccountability",
    "InviteAuditRow",
    "InviteCodeRow",
    "InviteCursorRow",
    "InviteEdgeRow",
    "InviteLedger",
    "InviteRedemptions",
    "InviteSpending",
    "InviteStore",
    "InviteStrikeRow",
    "Redemption",
    "StrikeOutcome",
]
