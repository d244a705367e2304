"""The flag's evidence step, and the value types the flag chain shares.

Evidence is preserved BEFORE anything is purged, while pict-rs still holds
the bytes: a decision's file comes from the evidence store (the gate kept it)
or pict-rs (its recorded alias, else its SHA-256 in pict-rs's listing); a file
named on the command line is its own evidence. Each is kept once: a retry
finds the item an earlier flag kept (by decision, else by SHA-256).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warden.errors import WardenError
from warden.jobs import flag as flagging
from warden.services.thumbnails import MediaSource, attribution
from warden.store.decisions import DecisionRecord
from warden.store.quarantine import EvidenceStore, evidence_metadata


@dataclass(frozen=True)
class Subject:
    """What is flagged: its hashes, and the decision and the file's bytes when known
    (a file named on the command line has no decision, but its bytes are evidence)."""

    target: flagging.Target
    record: DecisionRecord | None = None
    media: bytes | None = None

    @property
    def label(self) -> str:
        return self.target.label


@dataclass(frozen=True)
class Step:
    """One of the five things, and how it went (or, in a preview, what it will do)."""

    name: str
    ok: bool
    detail: str


def account_of(record: DecisionRecord) -> str | None:
    """The Lemmy account behind a decision: the attributed account, else `uploader`."""
    return attribution(record, "account") or record.uploader


class FlagEvidence:
    """Keep the flagged file as evidence (see the module docstring)."""

    def __init__(self, evidence: EvidenceStore | None, source: MediaSource) -> None:
        self.evidence = evidence
        self.source = source

    def kept(self, record: DecisionRecord) -> str | None:
        """The evidence item an earlier flag of this decision kept, if any."""
        if record.evidence_id:
            return record.evidence_id
        if self.evidence is None:
            return None
        items = self.evidence.items()
        return next((i.id for i in items if i.metadata.get("decision_id") == record.id), None)

    def preserve(self, subject: Subject, actor: str, reason: str) -> Step:
        record = subject.record
        if record is None:
            return self._file(subject, actor, reason)
        if record.evidence_id:
            return Step("evidence", True, f"already kept as {record.evidence_id}")
        if self.evidence is None:
            return Step("evidence", False, "evidence preservation is off (evidence.enabled)")
        kept = self.kept(record)
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
        return self._keep(data, meta)

    def _file(self, subject: Subject, actor: str, reason: str) -> Step:
        """Evidence of media no decision describes: the file the admin named, else
        pict-rs's copy with that SHA-256; kept once per SHA-256."""
        target = subject.target
        if self.evidence is None:
            return Step("evidence", False, "evidence preservation is off (evidence.enabled)")
        sha = target.sha256
        items = self.evidence.items() if sha else []
        kept = next((i.id for i in items if i.metadata.get("sha256") == sha), None)
        if kept is not None:
            return Step("evidence", True, f"already kept as {kept}")
        data = subject.media
        alias = self.source.aliases_by_sha256().get(sha) if sha and data is None else None
        if data is None and alias is not None:
            data = self.source.media_of_alias(alias)
        if data is None:
            return Step("evidence", False, "neither the named file nor pict-rs holds the media")
        meta = {
            "sha256": sha,
            "pdq": target.frames[0].pdq if target.frames else None,
            "size": len(data),
            "source": "flag",
            "uploader": target.uploader,
            "decision": "flagged",
            "decision_id": None,
            "flagged_by": actor,
            "flag_reason": reason,
            "flagged_what": target.label,
            "alias": alias,
        }
        return self._keep(data, meta)

    def _keep(self, data: bytes, meta: Mapping[str, Any]) -> Step:
        if self.evidence is None:  # checked by both callers; kept for the type checker
            return Step("evidence", False, "evidence preservation is off (evidence.enabled)")
        try:
            item = self.evidence.preserve(data, meta)
        except WardenError as exc:
            return Step("evidence", False, exc.message)
        return Step("evidence", True, f"preserved as {item}")
