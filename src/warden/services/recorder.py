"""The decision recorder: how every verdict is kept, for the media gate and for rescans.

One order, one set of failure rules, wherever a verdict comes from:

1. **Evidence first.** Media refused for a label or a hash match is written to
   the encrypted evidence store before the decision, so the row's `evidence_id`
   names a file that exists. A write that fails is recorded in the verdict
   (`evidence_error`, the row names no evidence) and counted, never a dangling id.
2. **Then the row.** The decision is written before anyone is answered. A write
   that fails answers under the source's failure mode with `store_error`: a
   refusal stays a refusal (the log missed it too), anything else becomes what the
   failure mode says (closed: refused; open: accepted, saying why).

Rows from concurrent requests are written together (`GroupWriter`): one
transaction, one commit, for whatever arrived while the previous commit ran. Each
caller still waits for the commit that holds its own row, so "logged before it is
answered" holds row by row. A batch that fails is retried row by row, so one bad
row costs only its own answer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace

from warden.domain.policy import FailMode
from warden.domain.verdict import Decision, Reason, Verdict
from warden.errors import EvidenceError, ScanError
from warden.services.metrics import Metrics
from warden.store.decisions import NOBODY, Attribution, DecisionEntry, DecisionLog
from warden.store.quarantine import EvidenceStore, evidence_metadata, should_preserve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """The verdict as it must be answered, and where it was recorded.

    `logged` is False when the decision row could not be written (the verdict
    then carries `store_error`); a rescan leaves such a key out of its ledger so
    that the next run scans it again."""

    verdict: Verdict
    decision_id: int | None
    evidence_id: str | None
    logged: bool


@dataclass(frozen=True)
class Facts:
    """Who and what a verdict is about, beside the verdict itself."""

    source: str
    uploader: str | None = None
    declared_type: str | None = None
    store_key: str | None = None  # a rescan's object key, kept in the evidence metadata
    attribution: Attribution = NOBODY  # account, address, alias, link (issue 18)


class GroupWriter:
    """Writes decision rows in group commits from one thread.

    One writer thread (so SQLite's single write lock is never contended by
    Warden itself) takes everything queued while the previous commit ran, up
    to `max_batch` rows, and writes it in one transaction."""

    def __init__(self, decisions: DecisionLog, *, max_batch: int = 64) -> None:
        self.decisions = decisions
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[DecisionEntry, Future[int]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, entry: DecisionEntry) -> Future[int]:
        """Queue one row; the future resolves to its id once its commit is done."""
        future: Future[int] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the decision writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="warden-log", daemon=True)
                self._thread.start()
            self._queue.put((entry, future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[DecisionEntry, Future[int]]]) -> None:
        """Write the batch; every row is written even when its caller stopped waiting
        (a cancelled request still had its verdict decided, so it is logged)."""
        try:
            ids = self.decisions.record_many([entry for entry, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            for entry, future in batch:  # one bad row must not cost the others their answer
                try:
                    _settle(future, self.decisions.record_many([entry])[0])
                except Exception as alone:
                    _settle(future, error=alone)
            return
        for (_, future), decision_id in zip(batch, ids, strict=True):
            _settle(future, decision_id)


def _settle(future: Future[int], result: int = 0, *, error: BaseException | None = None) -> None:
    """Resolve a caller's future unless the caller cancelled it meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled by its caller: the row is written all the same


class DecisionRecorder:
    """Evidence, then the decision row, for every verdict (see the module docstring).

    `fail_modes` is the scanner's own mapping for the gate (a reload updates it in
    place) and the settings' for a rescan."""

    def __init__(
        self,
        decisions: DecisionLog | None,
        evidence: EvidenceStore | None,
        *,
        fail_modes: Mapping[str, FailMode],
        config_version: str,
        metrics: Metrics | None = None,
        group_commit: bool = True,
    ) -> None:
        self.decisions = decisions
        self.evidence = evidence
        self.fail_modes = fail_modes
        self.config_version = config_version
        self.metrics = metrics
        self.evidence_errors = 0
        self._writer = GroupWriter(decisions) if decisions is not None and group_commit else None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    # -- the two entry points -------------------------------------------------------

    def record(self, verdict: Verdict, facts: Facts, data: bytes | None) -> Recorded:
        """Evidence (when due), then the row; blocking (rescans, the CLI)."""
        evidence_id, verdict = self._preserve(verdict, facts, data)
        entry = self._entry(verdict, facts, evidence_id)
        if entry is None:
            return Recorded(verdict, None, evidence_id, logged=False)
        try:
            if self._writer is not None:
                decision_id = self._writer.submit(entry).result()
            else:
                assert self.decisions is not None
                decision_id = self.decisions.record_many([entry])[0]
        except Exception as exc:
            return self._unlogged(verdict, facts, evidence_id, exc)
        return Recorded(verdict, decision_id, evidence_id, logged=True)

    async def arecord(self, verdict: Verdict, facts: Facts, data: bytes | None) -> Recorded:
        """The same from the event loop: evidence in a thread, the row in a group commit."""
        if self._due(verdict, data):
            evidence_id, verdict = await asyncio.to_thread(self._preserve, verdict, facts, data)
        else:
            evidence_id = None
        entry = self._entry(verdict, facts, evidence_id)
        if entry is None:
            return Recorded(verdict, None, evidence_id, logged=False)
        try:
            if self._writer is not None:
                decision_id = await asyncio.wrap_future(self._writer.submit(entry))
            else:
                assert self.decisions is not None
                decision_id = (await asyncio.to_thread(self.decisions.record_many, [entry]))[0]
        except Exception as exc:
            return self._unlogged(verdict, facts, evidence_id, exc)
        return Recorded(verdict, decision_id, evidence_id, logged=True)

    # -- the rules ------------------------------------------------------------------

    def _due(self, verdict: Verdict, data: bytes | None) -> bool:
        return self.evidence is not None and data is not None and should_preserve(verdict)

    def _entry(
        self, verdict: Verdict, facts: Facts, evidence_id: str | None
    ) -> DecisionEntry | None:
        if self.decisions is None:
            return None
        return DecisionEntry(
            verdict,
            source=facts.source,
            uploader=facts.uploader,
            config_version=self.config_version,
            evidence_id=evidence_id,
            attribution=facts.attribution,
        )

    def _preserve(
        self, verdict: Verdict, facts: Facts, data: bytes | None
    ) -> tuple[str | None, Verdict]:
        """Write the evidence when due; its id, or None and the verdict saying it was
        not kept. The decision id is not known yet, so the evidence's metadata has
        none: the decision names the evidence, not the other way round."""
        if not self._due(verdict, data):
            return None, verdict
        assert self.evidence is not None and data is not None
        extra: dict[str, object] = {"store_key": facts.store_key} if facts.store_key else {}
        who = facts.attribution
        if who != NOBODY:  # what a hotline report asks: the account and its address
            extra.update(
                account=who.account, account_id=who.account_id, client_address=who.client_address
            )
        metadata = evidence_metadata(
            verdict,
            source=facts.source,
            uploader=facts.uploader,
            declared_type=facts.declared_type,
            config_version=self.config_version,
            decision_id=None,
            **extra,
        )
        try:
            return self.evidence.preserve(data, metadata), verdict
        except Exception as exc:
            where = f" ({facts.store_key})" if facts.store_key else ""
            log.exception("EVIDENCE NOT PRESERVED for %s%s", verdict.sha256, where)
            self.evidence_errors += 1
            if self.metrics is not None:
                self.metrics.evidence_errors.inc()
            error = exc if isinstance(exc, EvidenceError) else EvidenceError(str(exc))
            reason = Reason(
                error.code, f"the media could not be preserved as evidence: {error.message}"
            )
            return None, replace(verdict, reasons=(*verdict.reasons, reason))

    def _unlogged(
        self, verdict: Verdict, facts: Facts, evidence_id: str | None, exc: Exception
    ) -> Recorded:
        log.error("decision for %s could not be written: %s", verdict.sha256, exc, exc_info=exc)
        return Recorded(self.store_failure(verdict, facts.source, exc), None, evidence_id, False)

    def store_failure(self, verdict: Verdict, source: str, exc: Exception) -> Verdict:
        """The verdict to answer when its row could not be written: `store_error`
        under the source's failure mode (a refusal stays one, and says so)."""
        error = ScanError(f"the decision could not be recorded: {exc}", code="store_error")
        if verdict.decision is Decision.REJECT:
            reason = Reason(error.code, error.message, {"fail_mode": "closed"})
            return replace(verdict, reasons=(*verdict.reasons, reason))
        if self.fail_modes.get(source, FailMode.CLOSED) is FailMode.OPEN:
            reason = Reason(
                error.code,
                f"{error.message}; accepted because {source} fails open",
                {"fail_mode": "open"},
            )
            return replace(verdict, decision=Decision.ACCEPT, reasons=(reason,))
        reason = Reason(error.code, error.message, {"fail_mode": "closed"})
        return replace(verdict, decision=Decision.REJECT, reasons=(reason,))
