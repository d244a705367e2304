"""Uploads scanned in the ingest proxy, where Warden knows who is uploading (issue 18).

Lemmy forwards every header of the uploader's request to pict-rs, the login
(`Authorization: Bearer`, the `jwt` cookie) included, and adds
`X-Forwarded-For: <its peer>` (LemmyNet/lemmy 0.19.3 crates/routes/src/images.rs:69-90,
:107; 1.0 main crates/routes/src/images/utils.rs:17-40, upload.rs:227). So the
proxy reads the login exactly as Lemmy does (adapters/lemmy/credentials.py), asks
Lemmy who it is (the /authz `Identity`, cached), and scans each file of the upload
through the media gate with that attribution, before pict-rs stores a byte:

- any file refused -> the whole upload is refused in the proxy (pict-rs's answer
  shape), every file's decision recorded with the account and address;
- all accepted -> each file's SHA-256 and decision are held for the validation
  hook (`IngestTracker.expect`), the upload is forwarded, and pict-rs's 201 names
  the alias of each file, written on its decision and the hook's linked rows.

Who it is never decides whether an upload is scanned: a login Lemmy will not
confirm (or a Lemmy that cannot say) leaves the account unknown, and the upload
is scanned and recorded all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from warden.adapters.lemmy.credentials import HeaderPairs, read_credentials
from warden.adapters.lemmy.identity import Identity
from warden.adapters.pictrs_proxy import Expected, IngestTracker, UploadPart
from warden.config import Settings
from warden.domain.verdict import Decision, Verdict
from warden.media.pipeline import ScanContext
from warden.services.factories import lemmy_database
from warden.services.gate import GateOutcome, MediaGate
from warden.services.scanning import decode_limits
from warden.services.thumbnails import MediaSource
from warden.store.decisions import Attribution, DecisionLog, DecisionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screened:
    """One upload's files and the proxy's decision on each, in upload order."""

    parts: Sequence[UploadPart]
    outcomes: Sequence[GateOutcome]
    attribution: Attribution

    @property
    def refusal(self) -> GateOutcome | None:
        """The first refused file's outcome; None when every file may be stored."""
        return next((o for o in self.outcomes if o.verdict.decision is Decision.REJECT), None)


@dataclass(frozen=True)
class Decided:
    """What the validation hook answers from: the proxy's verdict and who uploaded."""

    verdict: Verdict
    attribution: Attribution


class UploadScreen:
    """Attribute and scan uploads in the proxy; link them for the validation hook."""

    def __init__(
        self,
        gate: MediaGate,
        identity: Identity,
        tracker: IngestTracker,
        decisions: DecisionLog | None,
        *,
        deadline_s: float,
    ) -> None:
        self.gate = gate
        self.identity = identity
        self.tracker = tracker
        self.decisions = decisions
        self.deadline_s = deadline_s

    async def attribution(
        self, headers: HeaderPairs, client_address: str | None, lemmy_client_ip: str | None
    ) -> Attribution:
        """The uploader as Lemmy will see it: the login on the request, confirmed by
        Lemmy; the address whatever happens."""
        credentials = read_credentials(headers)
        if credentials.token is None:
            return Attribution(client_address=client_address)
        try:
            facts = await self.identity.facts(credentials.token, client_ip=lemmy_client_ip)
        except Exception as exc:  # Lemmy could not say: scanned all the same, unattributed
            log.warning("uploader unknown: Lemmy could not confirm the login (%s)", exc)
            facts = None
        if facts is None:
            return Attribution(client_address=client_address)
        return Attribution(facts.person_id, facts.name, client_address)

    async def screen(self, parts: Sequence[UploadPart], who: Attribution) -> Screened:
        """Every file through the gate at once, each decision recorded with `who`."""
        outcomes = await asyncio.gather(
            *(
                self.gate.check(
                    part.data,
                    ScanContext(
                        source="upload", filename=part.filename, declared_type=part.content_type
                    ),
                    deadline_s=self.deadline_s,
                    attribution=who,
                )
                for part in parts
            )
        )
        return Screened(parts, outcomes, who)

    def expect(self, screened: Screened) -> int:
        """Hold the accepted files for the hook while the upload is forwarded."""
        return self.tracker.expect(
            [
                (o.verdict.sha256, o.decision_id, Decided(o.verdict, screened.attribution))
                for o in screened.outcomes
            ]
        )

    async def stored(self, request: int, screened: Screened, aliases: Sequence[str]) -> None:
        """pict-rs answered: name each file's alias on its decision (and the hook's rows
        linked to it), then drop what the hook did not claim."""
        self.tracker.release(request)
        if self.decisions is None:
            return
        if aliases and len(aliases) != len(screened.outcomes):
            log.warning(
                "pict-rs named %d aliases for %d files: aliases not attributed",
                len(aliases),
                len(screened.outcomes),
            )
            return
        for outcome, alias in zip(screened.outcomes, aliases, strict=False):
            if outcome.decision_id is not None:
                await asyncio.to_thread(self.decisions.set_alias, outcome.decision_id, alias)

    def claim(self, sha256: str, *, guess: bool) -> tuple[Expected, Decided] | None:
        """For the hook: the proxy's decision on these bytes, when there is one; with
        `guess` (only uploads in flight), the only upload's file for re-encoded bytes."""
        entry = self.tracker.claim(sha256, guess=guess)
        if entry is None or not isinstance(entry.payload, Decided):
            return None
        return entry, entry.payload

    @staticmethod
    def linked(decided: Decided, decision_id: int | None) -> Attribution:
        """The attribution of a hook row answering from the proxy's `decision_id`."""
        return replace(decided.attribution, linked_decision_id=decision_id)


def lemmy_recorded_uploader(
    settings: Settings, record: DecisionRecord, alias: str | None = None
) -> tuple[int, str, str] | None:
    """The fallback attribution, after the fact, for decisions nobody attributed (no
    ingest proxy in front of pict-rs): the alias (recorded, given, or found by SHA-256
    in pict-rs 0.5's listing when `pictrs.api_key` is set), then the account Lemmy's
    own `local_image` records for it (`federated.lemmy_database_url`). Returns
    (person id, name, alias), or None when any link is missing. Blocking."""
    if settings.federated.lemmy_database_url is None:
        return None
    if alias is None and record.alias is None and settings.pictrs.api_key is not None:
        source = MediaSource(
            None,
            settings.pictrs.url,
            settings.pictrs.api_key.get_secret_value(),
            decode_limits(settings),
            timeout_s=settings.pictrs.timeout_s,
        )
        alias = source.alias_of(record)
    alias = alias or record.alias
    if alias is None:
        return None
    lemmy = lemmy_database(settings)
    try:
        found = lemmy.uploader_of(alias)
    finally:
        lemmy.close()
    return None if found is None else (found[0], found[1], alias)
