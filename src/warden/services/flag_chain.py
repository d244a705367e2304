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

`plan` says all of that without doing any of it; `run` does it and
answers one `Step` per thing with what failed. The console runs all five on
a decision; `warden flag` runs the same steps on a decision, a file or a
SHA-256 (`Subject`), choosing which (`--purge`, `--ban`), so the two cannot
drift. Every step is idempotent (a
banked hash, a purged file, a ban and a strike each count once), so a retry
runs the whole chain again and only what failed before does anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warden.adapters.lemmy import LemmyApi
from warden.adapters.pictrs import PictrsAdmin
from warden.config import Settings
from warden.domain.banks import Bank, BankAction, BankKind
from warden.errors import FlagError, UpstreamError, WardenError
from warden.jobs import flag as flagging
from warden.media.matcher import BankMatcher
from warden.services.alerts import Alerts
from warden.services.flag_evidence import FlagEvidence, Step, Subject, account_of
from warden.services.scanning import decode_limits
from warden.services.thumbnails import MediaSource
from warden.store.banks import BankStore
from warden.store.decisions import DecisionLog, DecisionRecord
from warden.store.invites import InviteStore
from warden.store.quarantine import EvidenceStore

STEPS = ("bank", "evidence", "purge", "ban", "strike")


def chosen(steps: Iterable[str]) -> tuple[str, ...]:
    """The steps to run, in the chain's order; purging always keeps the evidence first."""
    wanted = set(steps) | ({"evidence"} if "purge" in steps else set())
    unknown = wanted - set(STEPS)
    if unknown:
        raise FlagError(f"unknown flag steps: {', '.join(sorted(unknown))}")
    return tuple(s for s in STEPS if s in wanted)


@dataclass
class FlagPlan:
    """What a flag of one decision will do; nothing is done to make it."""

    decision: DecisionRecord | None
    bank: str
    hashes: int
    earlier: list[DecisionRecord] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    uploaders: list[str] = field(default_factory=list)
    inviters: dict[str, str] = field(default_factory=dict)  # uploader -> inviter
    evidence: str = ""
    problems: list[str] = field(default_factory=list)
    steps: tuple[str, ...] = STEPS
    label: str = ""


@dataclass
class FlagResult:
    decision_id: int | None
    steps: list[Step] = field(default_factory=list)
    report: flagging.FlagReport | None = None  # what the bank step banked and matched
    banned: list[str] = field(default_factory=list)  # newly banned by the ban step

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
        alerts: Alerts | None = None,
    ) -> None:
        self.settings = settings
        # flag_action / ban_action go to the admins' channels (swapped on reload by
        # Services); `warden flag` sends them itself after the chain (jobs/flag.py)
        self.alerts = alerts
        self.decisions = decisions
        self.banks = banks
        self.invites = invites
        self.evidence = evidence
        self.source = source
        self.lemmy = lemmy
        self.refresh_banks = refresh_banks
        self.keeper = FlagEvidence(evidence, source)

    # -- preview -------------------------------------------------------------------

    def _record(self, decision_id: int) -> DecisionRecord:
        record = self.decisions.get(decision_id)
        if record is None:
            raise FlagError(f"no decision {decision_id} in the decisions log")
        return record

    def subject(self, what: int | str | Subject) -> Subject:
        """A decision id, a file path or a SHA-256 -> what will be flagged (blocking)."""
        if isinstance(what, Subject):
            return what
        target = flagging.resolve(str(what), self.settings, self.decisions)
        record = self._record(target.decision_id) if target.decision_id is not None else None
        path = Path(str(what))
        media = path.read_bytes() if record is None and path.is_file() else None
        return Subject(target, record, media)

    def _earlier(self, subject: Subject) -> list[DecisionRecord]:
        """Earlier decisions the target matches, found without banking anything."""
        target = subject.target
        pdq = Bank(-1, "preview", BankKind.PDQ, BankAction.REJECT)
        sha = Bank(-2, "preview-sha256", BankKind.SHA256, BankAction.REJECT)
        matcher = BankMatcher()
        matcher.set_banks([pdq, sha])
        frames = [f for f in target.frames if f.quality >= pdq.min_quality]
        matcher.add(pdq.id, [(i, f.pdq) for i, f in enumerate(frames)])
        if target.sha256:
            matcher.add(sha.id, [(0, target.sha256)])
        since = datetime.now(UTC) - timedelta(days=self.settings.banks.rematch_days)
        own = subject.record.id if subject.record else target.decision_id
        return [
            r
            for r in self.decisions.since(since)
            if r.id != own and matcher.match(r.verdict.sha256, r.verdict.frames)
        ]

    def _aliases(self, subject: Subject, records: list[DecisionRecord]) -> list[str]:
        found = {self.source.alias_of(r) for r in records}
        if subject.record is None and subject.target.sha256:  # a file or hash: pict-rs's copy
            found.add(self.source.aliases_by_sha256().get(subject.target.sha256))
        return sorted(a for a in found if a)

    def _everyone(self, subject: Subject, earlier: list[DecisionRecord]) -> list[DecisionRecord]:
        return [subject.record, *earlier] if subject.record else list(earlier)

    def _uploaders(self, subject: Subject, everyone: list[DecisionRecord]) -> list[str]:
        names = {account_of(r) for r in everyone} | {subject.target.uploader}
        return sorted(n for n in names if n)

    def plan(self, what: int | str | Subject, steps: Iterable[str] = STEPS) -> FlagPlan:
        """What flagging will do, step by step (blocking: call from a thread)."""
        todo = chosen(steps)
        subject = self.subject(what)
        record, target = subject.record, subject.target
        earlier = self._earlier(subject)
        everyone = self._everyone(subject, earlier)
        uploaders = self._uploaders(subject, everyone)
        inviters: dict[str, str] = {}
        for name in uploaders:
            person = ledger_person(self.invites, name)
            inviter = self.invites.inviter_of(person[0]) if person else None
            found = self.invites.find(str(inviter)) if inviter is not None else None
            if found is not None:
                inviters[name] = found.name
        problems = []
        if "ban" in todo and self.settings.lemmy.bot_token is None and uploaders:
            problems.append("lemmy.bot_token is not set: nobody can be banned")
        if "purge" in todo and self.settings.pictrs.api_key is None:
            problems.append("pictrs.api_key is not set: nothing can be purged")
        kept = self.keeper.kept(record) if record else None
        if kept is not None:
            evidence = f"already kept as {kept}"
        elif self.evidence is None:
            evidence = "not kept: evidence preservation is off"
            if "evidence" in todo:
                problems.append("evidence.enabled is off: the file cannot be preserved")
        else:
            evidence = "the file will be preserved, encrypted, before it is purged"
        return FlagPlan(
            decision=record,
            bank=self.settings.banks.flag_bank,
            hashes=len(target.frames) + len(target.extra) + (1 if target.sha256 else 0),
            earlier=earlier,
            aliases=self._aliases(subject, everyone) if "purge" in todo else [],
            uploaders=uploaders,
            inviters=inviters,
            evidence=evidence,
            problems=problems,
            steps=todo,
            label=target.label,
        )

    # -- run -----------------------------------------------------------------------

    async def run(
        self,
        what: int | str | Subject,
        *,
        actor: str,
        reason: str,
        steps: Iterable[str] = STEPS,
        via: str = "console",
    ) -> FlagResult:
        """Do the chosen steps (all five by default); one failing step never stops the
        others after it (except that nothing is purged when the evidence could not be
        kept). `via` names the tool in the invite ledger's strike ("console: alice")."""
        todo = chosen(steps)
        subject = await asyncio.to_thread(self.subject, what)
        result = FlagResult(subject.record.id if subject.record else None)
        earlier: list[DecisionRecord] = []
        if "bank" in todo:
            bank_step, result.report = await asyncio.to_thread(self._bank, subject, actor, reason)
            result.steps.append(bank_step)
            if self.alerts is not None and result.report is not None:
                self.alerts.flag_action(
                    by=actor,
                    bank=result.report.pdq_bank,
                    hashes=len(result.report.added),
                    label=result.report.target.label,
                )
            earlier = [r for r, _ in result.report.earlier] if result.report else []
        else:
            earlier = await asyncio.to_thread(self._earlier, subject)
        everyone = self._everyone(subject, earlier)
        evidence_ok = True
        if "evidence" in todo:
            step = await asyncio.to_thread(self.keeper.preserve, subject, actor, reason)
            result.steps.append(step)
            evidence_ok = step.ok
        if "purge" in todo:
            if evidence_ok:
                result.steps.append(await asyncio.to_thread(self._purge, subject, everyone))
            else:
                result.steps.append(
                    Step("purge", False, "not purged: the evidence must be kept first (retry)")
                )
        if "ban" in todo:
            names = self._uploaders(subject, everyone)
            ban_step, banned, result.banned = await self._ban(names, reason)
            result.steps.append(ban_step)
            if self.alerts is not None and result.banned:
                self.alerts.ban_action(by=actor, user=", ".join(result.banned), reason=reason)
            if "strike" in todo:
                strike = await asyncio.to_thread(self._strike, banned, reason, f"{via}: {actor}")
                result.steps.append(strike)
        return result

    def _held(self, subject: Subject) -> flagging.Target:
        """The target with its picture's keypoints when Warden can get the picture: the
        named file, else the decision's evidence or pict-rs's copy (issue 16: the
        scanner then refuses crops and small rotations of it too). Without the bytes
        the hashes are banked all the same."""
        target = subject.target
        if target.features is not None:
            return target
        data = subject.media
        if data is None and subject.record is not None:
            data = self.source.media(subject.record)
        return flagging.with_features(target, data, decode_limits(self.settings))

    def _bank(
        self, subject: Subject, actor: str, reason: str
    ) -> tuple[Step, flagging.FlagReport | None]:
        try:
            report = flagging.flag(
                self._held(subject),
                settings=self.settings,
                store=self.banks,
                decisions=self.decisions,
                by=actor,
                reason=reason,
            )
            self.refresh_banks()
        except WardenError as exc:
            return Step("bank", False, exc.message), None
        held = "; keypoints kept" if report.keypoints_entry is not None else ""
        return (
            Step(
                "bank",
                True,
                f"{len(report.added)} new hashes in {report.pdq_bank} / {report.sha_bank};"
                f" {len(report.earlier)} earlier uploads match{held}",
            ),
            report,
        )

    def _purge(self, subject: Subject, records: list[DecisionRecord]) -> Step:
        key = self.settings.pictrs.api_key
        if key is None:
            return Step("purge", False, "pictrs.api_key is not set")
        aliases = self._aliases(subject, records)
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

    async def _ban(
        self, names: list[str], reason: str
    ) -> tuple[Step, list[tuple[int, str]], list[str]]:
        """(the step, every uploader now banned as (person id, name), the newly banned)."""
        if not names:
            return Step("ban", True, "no uploader is known"), [], []
        token = self.settings.lemmy.bot_token
        if token is None:
            return Step("ban", False, "lemmy.bot_token is not set"), [], []
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
            return Step("ban", False, detail + "; failed: " + "; ".join(failed)), done, banned
        return Step("ban", True, detail), done, banned

    def _strike(self, banned: list[tuple[int, str]], reason: str, actor: str) -> Step:
        if not banned:
            return Step("strike", True, "nobody banned, nobody struck")
        notes = []
        for person_id, name in banned:
            outcome = self.invites.record_ban(person_id, name, reason, datetime.now(UTC), actor)
            notes.append(
                f"{name}: inviter {outcome.inviter.name} struck ({outcome.inviter.strikes})"
                if outcome is not None
                else f"{name}: no inviter to strike (or already struck)"
            )
        return Step("strike", True, "; ".join(notes))


__all__ = [
    "STEPS",
    "FlagChain",
    "FlagPlan",
    "FlagResult",
    "Step",
    "Subject",
    "account_of",
    "chosen",
    "ledger_person",
]
