"""The one-step FLAG: "this is bad" becomes five things, shown before and after.

From one decision the console (and anything else sharing this service):

1. **banks** its hashes in the flag bank (`jobs.flag.flag`: PDQ, SHA-256 and
   Warden's own hashes), so the next copy is refused everywhere, and finds
   the earlier decisions that match it;
2. **preserves evidence** of the file (unless the gate already kept it) —
   BEFORE the purge, while pict-rs still holds the bytes;
3. **purges every copy** from pict-rs: the file behind each alias of this and
   every earlier matching upload (one purge removes a file with all its
   aliases), found by the alias attribution recorded, else by SHA-256 in
   pict-rs's listing;
4. **bans** each uploader through Lemmy with their content removed
   (`lemmy.bot_token`);
5. **strikes** each uploader's inviter in the invite ledger.

`preview` says all of that without doing any of it; `run` does it and
answers one `Step` per thing with what failed. Every step is idempotent (a
banked hash, a purged file, a ban and a strike each count once), so a retry
runs the whole chain again and only what failed before does anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from warden.adapters.lemmy import LemmyApi
from warden.adapters.pictrs import PictrsAdmin
from warden.config import Settings
from warden.domain.banks import Bank, BankAction, BankKind
from warden.errors import FlagError, UpstreamError, WardenError
from warden.jobs import flag as flagging
from warden.media.matcher import BankMatcher
from warden.services.thumbnails import MediaSource, attribution
from warden.store.banks import BankStore
from warden.store.decisions import DecisionLog, DecisionRecord
from warden.store.invites import InviteStore
from warden.store.quarantine import EvidenceStore, evidence_metadata

STEPS = ("bank", "evidence", "purge", "ban", "strike")


@dataclass(frozen=True)
class Step:
    """One of the five things, and how it went (or, in a preview, what it will do)."""

    name: str
    ok: bool
    detail: str


@dataclass
class FlagPlan:
    """What a flag of one decision will do; nothing is done to make it."""

    decision: DecisionRecord
    bank: str
    hashes: int
    earlier: list[DecisionRecord] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    uploaders: list[str] = field(default_factory=list)
    inviters: dict[str, str] = field(default_factory=dict)  # uploader -> inviter
    evidence: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class FlagResult:
    decision_id: int
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]


def ledger_person(invites: InviteStore, name: str) -> tuple[int, str] | None:
    """(person id, name) of an account the invite ledger knows, as inviter or invitee."""
    account = invites.find(name)
    if account is not None:
        return account.person_id, account.name
    for tree in invites.tree():
        for node in tree.walk():
            if node.name == name:
                return node.person_id, node.name
    return None


def account_of(record: DecisionRecord) -> str | None:
    """The Lemmy account behind a decision: the attributed account, else `uploader`."""
    return attribution(record, "account") or record.uploader


class FlagChain:
    """Preview and run the flag chain (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        decisions: DecisionLog,
        banks: BankStore,
        invites: InviteStore,
        evidence: EvidenceStore | None,
        source: MediaSource,
        lemmy: LemmyApi,
        refresh_banks: Callable[[], object] = lambda: None,
    ) -> None:
        self.settings = settings
        self.decisions = decisions
        self.banks = banks
        self.invites = invites
        self.evidence = evidence
        self.source = source
        self.lemmy = lemmy
        self.refresh_banks = refresh_banks

    # -- preview -------------------------------------------------------------------

    def _record(self, decision_id: int) -> DecisionRecord:
        record = self.decisions.get(decision_id)
        if record is None:
            raise FlagError(f"no decision {decision_id} in the decisions log")
        return record

    def _earlier(self, target: flagging.Target, record: DecisionRecord) -> list[DecisionRecord]:
        """Earlier decisions the target matches, found without banking anything."""
        pdq = Bank(-1, "preview", BankKind.PDQ, BankAction.REJECT)
        sha = Bank(-2, "preview-sha256", BankKind.SHA256, BankAction.REJECT)
        matcher = BankMatcher()
        matcher.set_banks([pdq, sha])
        frames = [f for f in target.frames if f.quality >= pdq.min_quality]
        matcher.add(pdq.id, [(i, f.pdq) for i, f in enumerate(frames)])
        if target.sha256:
            matcher.add(sha.id, [(0, target.sha256)])
        since = datetime.now(UTC) - timedelta(days=self.settings.banks.rematch_days)
        return [
            r
            for r in self.decisions.since(since)
            if r.id != record.id and matcher.match(r.verdict.sha256, r.verdict.frames)
        ]

    def _aliases(self, records: list[DecisionRecord]) -> list[str]:
        found = (self.source.alias_of(r) for r in records)
        return sorted({a for a in found if a})

    def plan(self, decision_id: int) -> FlagPlan:
        """What flagging this decision will do (blocking: call from a thread)."""
        record = self._record(decision_id)
        target = flagging.resolve(str(decision_id), self.settings, self.decisions)
        earlier = self._earlier(target, record)
        everyone = [record, *earlier]
        uploaders = sorted({a for a in (account_of(r) for r in everyone) if a})
        inviters: dict[str, str] = {}
        for name in uploaders:
            person = ledger_person(self.invites, name)
            inviter = self.invites.inviter_of(person[0]) if person else None
            found = self.invites.find(str(inviter)) if inviter is not None else None
            if found is not None:
                inviters[name] = found.name
        problems = []
        if self.settings.lemmy.bot_token is None and uploaders:
            problems.append("lemmy.bot_token is not set: nobody can be banned")
        if self.settings.pictrs.api_key is None:
            problems.append("pictrs.api_key is not set: nothing can be purged")
        kept = self._kept(record)
        if kept is not None:
            evidence = f"already kept as {kept}"
        elif self.evidence is None:
            evidence = "not kept: evidence preservation is off"
            problems.append("evidence.enabled is off: the file cannot be preserved")
        else:
            evidence = "the file will be preserved, encrypted, before it is purged"
        return FlagPlan(
            decision=record,
            bank=self.settings.banks.flag_bank,
            hashes=len(target.frames) + len(target.extra) + (1 if target.sha256 else 0),
            earlier=earlier,
            aliases=self._aliases(everyone),
            uploaders=uploaders,
            inviters=inviters,
            evidence=evidence,
            problems=problems,
        )

    # -- run -----------------------------------------------------------------------

    async def run(self, decision_id: int, *, actor: str, reason: str) -> FlagResult:
        """Do all five things; one failing step never stops the others after it
        (except that nothing is purged when the evidence could not be kept)."""
        result = FlagResult(decision_id)
        record = await asyncio.to_thread(self._record, decision_id)
        bank_step, earlier = await asyncio.to_thread(self._bank, record, actor, reason)
        result.steps.append(bank_step)
        evidence_step = await asyncio.to_thread(self._preserve, record, actor, reason)
        result.steps.append(evidence_step)
        everyone = [record, *earlier]
        if evidence_step.ok:
            result.steps.append(await asyncio.to_thread(self._purge, everyone))
        else:
            result.steps.append(
                Step("purge", False, "not purged: the evidence must be kept first (retry)")
            )
        names = sorted({a for a in (account_of(r) for r in everyone) if a})
        ban_step, banned = await self._ban(names, reason)
        result.steps.append(ban_step)
        result.steps.append(await asyncio.to_thread(self._strike, banned, reason, actor))
        return result

    def _bank(
        self, record: DecisionRecord, actor: str, reason: str
    ) -> tuple[Step, list[DecisionRecord]]:
        try:
            target = flagging.resolve(str(record.id), self.settings, self.decisions)
            report = flagging.flag(
                target,
                settings=self.settings,
                store=self.banks,
                decisions=self.decisions,
                by=actor,
                reason=reason,
            )
            self.refresh_banks()
        except WardenError as exc:
            return Step("bank", False, exc.message), []
        earlier = [r for r, _ in report.earlier]
        return (
            Step(
                "bank",
                True,
                f"{len(report.added)} new hashes in {report.pdq_bank} / {report.sha_bank};"
                f" {len(earlier)} earlier uploads match",
            ),
            earlier,
        )

    def _kept(self, record: DecisionRecord) -> str | None:
        """The evidence item an earlier flag of this decision kept, if any."""
        if record.evidence_id:
            return record.evidence_id
        if self.evidence is None:
            return None
        items = self.evidence.items()
        return next((i.id for i in items if i.metadata.get("decision_id") == record.id), None)

    def _preserve(self, record: DecisionRecord, actor: str, reason: str) -> Step:
        if record.evidence_id:
            return Step("evidence", True, f"already kept as {record.evidence_id}")
        if self.evidence is None:
            return Step("evidence", False, "evidence preservation is off (evidence.enabled)")
        kept = self._kept(record)
        if kept is not None:  # an earlier flag of this decision (a retry) kept it
            return Step("evidence", True, f"already kept as {kept}")
        data = self.source.media(record)
        if data is None:
            return Step("evidence", False, "neither the evidence store nor pict-rs holds the file")
        meta = evidence_metadata(
            record.verdict,
            source=record.source,
            uploader=account_of(record),
            declared_type=None,
            config_version=record.config_version,
            decision_id=record.id,
            flagged_by=actor,
            flag_reason=reason,
            alias=attribution(record, "alias"),
            client_address=attribution(record, "client_address"),
            decided_at=record.created_at.isoformat(),
        )
        try:
            item = self.evidence.preserve(data, meta)
        except WardenError as exc:
            return Step("evidence", False, exc.message)
        return Step("evidence", True, f"preserved as {item}")

    def _purge(self, records: list[DecisionRecord]) -> Step:
        key = self.settings.pictrs.api_key
        if key is None:
            return Step("purge", False, "pictrs.api_key is not set")
        aliases = self._aliases(records)
        if not aliases:
            return Step("purge", True, "pict-rs holds no copy")
        purged: list[str] = []
        gone: list[str] = []
        failed: list[str] = []
        try:
            with PictrsAdmin(
                self.settings.pictrs.url,
                key.get_secret_value(),
                timeout_s=self.settings.pictrs.timeout_s,
            ) as admin:
                for alias in aliases:
                    try:
                        if not admin.aliases(alias):
                            gone.append(alias)
                            continue
                        done = admin.purge(alias)
                        (purged if done.purged else gone).append(alias)
                    except WardenError as exc:
                        failed.append(f"{alias}: {exc.message}")
        finally:
            self.source.forget()
        detail = f"{len(purged)} files purged, {len(gone)} already gone"
        if failed:
            return Step("purge", False, detail + "; failed: " + "; ".join(failed))
        return Step("purge", True, detail)

    async def _ban(self, names: list[str], reason: str) -> tuple[Step, list[tuple[int, str]]]:
        if not names:
            return Step("ban", True, "no uploader is known"), []
        token = self.settings.lemmy.bot_token
        if token is None:
            return Step("ban", False, "lemmy.bot_token is not set"), []
        done: list[tuple[int, str]] = []
        banned: list[str] = []
        already: list[str] = []
        failed: list[str] = []
        for name in names:
            try:
                facts = await self.lemmy.person(name, token.get_secret_value())
                if facts.banned:
                    already.append(name)
                else:
                    await self.lemmy.ban(
                        token.get_secret_value(), facts.person_id, reason, remove_data=True
                    )
                    banned.append(name)
                done.append((facts.person_id, facts.name))
            except UpstreamError as exc:
                failed.append(f"{name}: {exc.message}")
        detail = f"banned with content removed: {', '.join(banned) or 'nobody new'}"
        if already:
            detail += f"; already banned: {', '.join(already)}"
        if failed:
            return Step("ban", False, detail + "; failed: " + "; ".join(failed)), done
        return Step("ban", True, detail), done

    def _strike(self, banned: list[tuple[int, str]], reason: str, actor: str) -> Step:
        if not banned:
            return Step("strike", True, "nobody banned, nobody struck")
        notes = []
        for person_id, name in banned:
            outcome = self.invites.record_ban(
                person_id, name, reason, datetime.now(UTC), f"console: {actor}"
            )
            notes.append(
                f"{name}: inviter {outcome.inviter.name} struck ({outcome.inviter.strikes})"
                if outcome is not None
                else f"{name}: no inviter to strike (or already struck)"
            )
        return Step("strike", True, "; ".join(notes))
