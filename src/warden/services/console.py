"""The incident console as a service: who may use it, and every action it offers.

Over ~400 lines: every console action sits in one service (the routes and `warden
flag` call it), each action a short method; splitting by page would split the audit trail.

The /console routes only parse and render; what each action does lives here,
so the command line can share it. Every action is written to the console's
audit table with who, what, on what and why, in the call that acts:

- **sign-in**: a Lemmy login (forwarded by the route) whose facts say admin
  — or moderator, when `console.moderators` is on — becomes a session row
  (services/console.py never keeps the Lemmy token);
- **queue**: `review` decisions nobody approved or flagged yet, newest first;
  a moderator sees only media the log places in a community they moderate
  (media placed nowhere is never shown to moderators: failing closed);
- **approve** -> the allow bank (`jobs.flag.unflag`); **flag** -> the chain
  of services/flag_chain.py;
- **uploads switch**: applies to this process's /authz at once (the rule
  source's override), is stored so a restart restores it, and is audited;
- **people**: decisions, invite tree, strikes; ban-subtree after a preview;
- **evidence**: list, and a report package for a hotline (NCMEC CyberTipline
  fields beside the file, encrypted under a one-time key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from warden.adapters.lemmy import LemmyApi
from warden.config import Settings
from warden.errors import FlagError, InputError, NotFound, PageRefused
from warden.jobs import flag as flagging
from warden.jobs.invites import ban_subtree, subtree
from warden.membership.gate import RuleSource
from warden.membership.invites import Account, TreeNode
from warden.membership.requirements import UserFacts
from warden.membership.rulebook import UploadsSwitch
from warden.services.console_now import NowReader
from warden.services.flag_chain import FlagChain, FlagResult, account_of, ledger_person
from warden.services.hotline import cybertip_fields
from warden.services.placement import Placement
from warden.services.throttle import LoginThrottle
from warden.services.thumbnails import Thumbnails, attribution
from warden.store.banks import BankStore
from warden.store.console import AuditRecord, ConsoleSession, ConsoleStore
from warden.store.decisions import DecisionLog, DecisionRecord
from warden.store.invites import InviteStore
from warden.store.places import MediaPlace, PlaceStore
from warden.store.quarantine import EvidenceItem, EvidenceStore

SWITCH_KEY = "uploads"
MAX_REASON = 1000


def reason_of(text: str) -> str:
    """An action's reason, required: it goes to Lemmy's modlog and the audit."""
    text = text.strip()
    if not text:
        raise InputError("Give a reason: it is kept in the audit (and Lemmy's modlog for bans).")
    if len(text) > MAX_REASON:
        raise InputError(f"The reason is longer than {MAX_REASON} characters.")
    return text


@dataclass(frozen=True)
class QueueItem:
    record: DecisionRecord
    account: str | None
    alias: str | None
    client_address: str | None
    withheld: bool  # a CSAM bank matched it: metadata only, never a picture
    places: tuple[MediaPlace, ...] = ()  # the Lemmy posts that use it (services/placement.py)


@dataclass
class PersonView:
    name: str
    account: Account | None
    inviter: str | None
    invitees: list[tuple[int, str, datetime]]
    subtree: list[TreeNode]
    decisions: list[DecisionRecord]
    audits: list[AuditRecord] = field(default_factory=list)


@dataclass(frozen=True)
class ExportedReport:
    folder: Path
    key: str  # the one-time key of media.bin, shown once


class ConsoleService:
    """Every console action over Warden's stores, Lemmy and pict-rs."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ConsoleStore,
        decisions: DecisionLog,
        banks: BankStore,
        invites: InviteStore,
        evidence: EvidenceStore | None,
        lemmy: LemmyApi,
        rules: RuleSource,
        chain: FlagChain,
        thumbnails: Thumbnails,
        now: NowReader,
        places: PlaceStore,
        placement: Placement,
    ) -> None:
        self.settings = settings
        self.store = store
        self.decisions = decisions
        self.banks = banks
        self.invites = invites
        self.evidence = evidence
        self.lemmy = lemmy
        self.rules = rules
        self.chain = chain
        self.thumbnails = thumbnails
        self.now_reader = now
        self.places = places
        self.placement = placement
        self.throttle = LoginThrottle(
            settings.invites.login_failures_per_account,
            settings.invites.login_failures_per_address,
            settings.invites.login_window_s,
        )

    # -- sessions ----------------------------------------------------------------

    async def sign_in(self, facts: UserFacts) -> tuple[str, ConsoleSession]:
        """A session for an admin (or a moderator when allowed); PageRefused otherwise."""
        if facts.banned:
            raise PageRefused(403, "This account is banned.")
        communities: tuple[int, ...] = ()
        if facts.admin:
            role = "admin"
        elif self.settings.console.moderators and facts.moderates:
            role, communities = "moderator", tuple(sorted(c.id for c in facts.moderates))
        else:
            who = "admins and moderators" if self.settings.console.moderators else "admins"
            raise PageRefused(403, f"The console is open to {who} only.")
        now = datetime.now(UTC)
        session = ConsoleSession(
            facts.person_id,
            facts.name,
            role,
            communities,
            secrets.token_urlsafe(24),
            now + timedelta(seconds=self.settings.console.session_ttl_s),
        )
        sid = secrets.token_urlsafe(32)
        await asyncio.to_thread(self.store.create_session, sid, session, now)
        await self.audit(session, "sign_in", f"person:{facts.person_id}", "", "ok", role=role)
        return sid, session

    async def session(self, sid: str | None) -> ConsoleSession | None:
        return await asyncio.to_thread(self.store.session, sid, datetime.now(UTC))

    async def sign_out(self, sid: str | None) -> None:
        await asyncio.to_thread(self.store.drop_session, sid)

    async def audit(
        self,
        who: ConsoleSession,
        action: str,
        target: str,
        reason: str,
        outcome: str,
        **detail: Any,
    ) -> int:
        return await asyncio.to_thread(
            self.store.audit, who.name, action, target, reason, outcome, detail
        )

    # -- the uploads switch -------------------------------------------------------------

    def uploads(self) -> tuple[str, bool]:
        """The switch in force and whether the console set it."""
        override = self.rules.uploads_override
        return (override.value if override else self.rules.current().uploads.value), (
            override is not None
        )

    def restore_switch(self) -> None:
        """Apply the switch the console stored (at start; blocking)."""
        stored = self.store.state(SWITCH_KEY)
        if stored in {s.value for s in UploadsSwitch}:
            self.rules.uploads_override = UploadsSwitch(stored)

    async def set_switch(self, who: ConsoleSession, value: str, reason: str) -> None:
        reason = reason_of(reason)
        try:
            switch = UploadsSwitch(value)
        except ValueError as exc:
            raise InputError("The uploads switch is one of on, off, admins, moderators.") from exc
        before, _ = self.uploads()
        self.rules.uploads_override = switch  # /authz reads it on its next request
        await asyncio.to_thread(
            self.store.set_state, SWITCH_KEY, switch.value, who.name, datetime.now(UTC)
        )
        await self.audit(who, "uploads", "switch:uploads", reason, "ok", before=before, after=value)

    # -- the review queue ---------------------------------------------------------------

    def _placed(self, records: list[DecisionRecord]) -> dict[str, list[MediaPlace]]:
        return self.places.of(r.alias for r in records if r.alias)

    def _visible(
        self, who: ConsoleSession, record: DecisionRecord, places: dict[str, list[MediaPlace]]
    ) -> bool:
        """Admins see everything; a moderator only media a post in a community they
        moderate uses (placed nowhere, or only elsewhere: not shown)."""
        if who.admin:
            return True
        found = places.get(record.alias or "", [])
        return any(p.community_id in who.communities for p in found)

    def _item(self, record: DecisionRecord, places: dict[str, list[MediaPlace]]) -> QueueItem:
        return QueueItem(
            record,
            account_of(record),
            attribution(record, "alias"),
            attribution(record, "client_address"),
            self.thumbnails.withheld(record),
            tuple(places.get(record.alias or "", [])),
        )

    async def place(self) -> int:
        """Look up where the queue's media was posted (cached: `console.placement_s`)."""
        return await self.placement.refresh()

    def queue(self, who: ConsoleSession, before: int | None = None) -> list[QueueItem]:
        """Open review decisions this person may see, newest first (blocking)."""
        limit = self.settings.console.queue_size
        out: list[QueueItem] = []
        for _ in range(10):  # bounded: a moderator's filter must not read the whole log
            if len(out) >= limit:
                break
            ids = self.store.review_ids(limit * 4, before)
            if not ids:
                break
            handled = self.store.handled(ids)
            records = [self.decisions.get(i) for i in ids if i not in handled]
            present = [r for r in records if r is not None]
            places = self._placed(present)
            for record in present:
                if self._visible(who, record, places) and len(out) < limit:
                    out.append(self._item(record, places))
            before = ids[-1]
        return out

    def decision(self, who: ConsoleSession, decision_id: int) -> QueueItem:
        """One decision this person may see (NotFound otherwise: blocking)."""
        record = self.decisions.get(decision_id)
        places = self._placed([record]) if record is not None else {}
        if record is None or not self._visible(who, record, places):
            raise NotFound(f"No decision {decision_id} that you may see.")
        return self._item(record, places)

    def thumbnail(self, who: ConsoleSession, decision_id: int) -> bytes | None:
        return self.thumbnails.thumbnail(self.decision(who, decision_id).record)

    async def clear(self, who: ConsoleSession, decision_id: int) -> bytes | None:
        """The clear picture of one item, for an admin who asked for it (audited)."""
        if not who.admin:
            raise PageRefused(403, "Only admins may see the clear picture.")
        item = await asyncio.to_thread(self.decision, who, decision_id)
        picture = await asyncio.to_thread(self.thumbnails.clear, item.record)
        outcome = "withheld" if item.withheld else ("ok" if picture else "gone")
        await self.audit(who, "reveal", f"decision:{decision_id}", "", outcome)
        return picture

    async def approve(self, who: ConsoleSession, decision_id: int, reason: str) -> str:
        """Approve -> the allow bank (it overrides every other bank and the model)."""
        reason = reason_of(reason)
        item = await asyncio.to_thread(self.decision, who, decision_id)
        if item.withheld:
            raise FlagError("Media a CSAM bank matched cannot be approved from the console.")
        target = await asyncio.to_thread(
            flagging.resolve, str(decision_id), self.settings, self.decisions
        )
        report = await asyncio.to_thread(
            flagging.unflag,
            target,
            settings=self.settings,
            store=self.banks,
            by=who.name,
            reason=reason,
        )
        await asyncio.to_thread(self.chain.refresh_banks)
        detail = f"allowed by {', '.join(report.allow_banks)}"
        await self.audit(
            who, "approve", f"decision:{decision_id}", reason, "ok", banks=report.allow_banks
        )
        return detail

    async def flag(self, who: ConsoleSession, decision_id: int, reason: str) -> FlagResult:
        """Run the flag chain (admins only); the steps are audited, failures included."""
        if not who.admin:
            raise PageRefused(403, "Only admins may flag.")
        reason = reason_of(reason)
        await asyncio.to_thread(self.decision, who, decision_id)
        result = await self.chain.run(decision_id, actor=who.name, reason=reason)
        await self.audit(
            who,
            "flag",
            f"decision:{decision_id}",
            reason,
            "ok" if result.ok else "partial",
            steps=[{"step": s.name, "ok": s.ok, "detail": s.detail} for s in result.steps],
        )
        return result

    # -- people ---------------------------------------------------------------------------

    def person(self, name: str) -> PersonView:
        """An account's uploads and decisions, its place in the invite tree (blocking)."""
        name = name.strip().lstrip("@")
        if not name or len(name) > 255:
            raise InputError("Give an account name.")
        person = ledger_person(self.invites, name)
        account = self.invites.find(str(person[0])) if person else None
        inviter = invitees = None
        tree: list[TreeNode] = []
        if person is not None:
            if account is None:  # known as an invitee only: no ledger row of its own yet
                account = Account(person[0], person[1])
            inviter_id = self.invites.inviter_of(person[0])
            found = self.invites.find(str(inviter_id)) if inviter_id is not None else None
            inviter = found.name if found else None
            invitees = self.invites.invitees_of(person[0])
            tree = subtree(self.invites, person[0])
        records = [self.decisions.get(i) for i in self.store.decision_ids_of(name)]
        return PersonView(
            name=account.name if account else name,
            account=account,
            inviter=inviter,
            invitees=invitees or [],
            subtree=tree,
            decisions=[r for r in records if r is not None],
            audits=self.store.audits(20, target=f"person:{name}"),
        )

    async def ban_subtree(
        self, who: ConsoleSession, name: str, reason: str
    ) -> tuple[list[TreeNode], list[str]]:
        """Ban the account and everyone it invited, through Lemmy with content removed."""
        reason = reason_of(reason)
        token = self.settings.lemmy.bot_token
        if token is None:
            raise FlagError("lemmy.bot_token is not set: nobody can be banned.")
        view = await asyncio.to_thread(self.person, name)
        if view.account is None:
            raise NotFound(f"{name} is not in the invite ledger.")
        banned, errors = await ban_subtree(
            self.invites,
            self.lemmy,
            token.get_secret_value(),
            view.account.person_id,
            reason,
            actor=f"console: {who.name}",
            remove_data=True,
        )
        await self.audit(
            who,
            "ban_subtree",
            f"person:{view.name}",
            reason,
            "ok" if not errors else "partial",
            banned=[n.name for n in banned],
            errors=errors,
        )
        return banned, errors

    # -- evidence -------------------------------------------------------------------------

    def evidence_items(self, limit: int = 200) -> list[EvidenceItem]:
        if self.evidence is None:
            return []
        ids = self.evidence.ids()[-limit:]
        return [self.evidence.show(i) for i in reversed(ids)]

    def exports_dir(self) -> Path:
        return self.settings.console.exports_dir or self.settings.data_dir / "exports"

    async def export(self, who: ConsoleSession, item_id: str) -> ExportedReport:
        """A hotline report package: metadata.json, cybertipline.json and media.bin
        (AES-256-GCM under a one-time key, returned once, to be sent separately)."""
        if not who.admin:
            raise PageRefused(403, "Only admins may export evidence.")
        if self.evidence is None:
            raise NotFound("Evidence preservation is off.")
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        dest = self.exports_dir() / stamp
        folder, key = await asyncio.to_thread(self.evidence.export, item_id, dest)
        meta = json.loads((folder / "metadata.json").read_text())
        (folder / "cybertipline.json").write_text(json.dumps(cybertip_fields(meta), indent=2))
        await self.audit(who, "export", f"evidence:{item_id}", "", "ok", folder=str(folder))
        return ExportedReport(folder, key)


@dataclass
class ConsoleFeature:
    """Everything the console needs, present only when `console.enabled`."""

    store: ConsoleStore
    service: ConsoleService
    sign: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # signs page messages

    def restore(self) -> None:
        """Put back the uploads switch the console set before a restart (blocking). An
        unmigrated database has nothing to restore."""
        with contextlib.suppress(SQLAlchemyError):
            self.service.restore_switch()


__all__ = [
    "ConsoleFeature",
    "ConsoleService",
    "ExportedReport",
    "PersonView",
    "QueueItem",
    "reason_of",
]
