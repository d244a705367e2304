"""The media gate as a service: scan under a deadline, log, preserve, count.

What `/pictrs/validate` and `/api/v1/scan` share, with no FastAPI in it:
decode and hash in the scanner's decoder processes (waited on from a few
threads), classify in shared micro-batches, stop at the deadline with the
source's failure mode (`scan_timeout`), turn any other exception into a
`scan_error` verdict under the failure mode, write the decision BEFORE anyone
is answered (a write that fails answers with the failure mode and
`store_error`), and keep media refused for a label or hash match in the
encrypted evidence store. Evidence is written before the decision, so the
decision's `evidence_id` names a file that exists; when the write fails the
decision says so (`evidence_error`) and names none.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from warden.domain.verdict import Decision, Reason, Verdict
from warden.errors import EvidenceError, ScanError, ScanTimeout
from warden.media import hashing
from warden.media.pipeline import Prepared, ScanContext, Scanner
from warden.store.decisions import DecisionLog
from warden.store.quarantine import EvidenceStore, evidence_metadata, should_preserve
from warden.web.batcher import MicroBatcher
from warden.web.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateOutcome:
    """The verdict as answered, and where it was recorded."""

    verdict: Verdict
    decision_id: int | None
    evidence_id: str | None


class MediaGate:
    """Decides about one file at a time, many at once."""

    def __init__(
        self,
        scanner: Scanner,
        *,
        batcher: MicroBatcher[Prepared, Verdict],
        decisions: DecisionLog | None,
        evidence: EvidenceStore | None,
        metrics: Metrics | None,
        deadline_s: float,
        scan_workers: int,
        config_version: str,
    ) -> None:
        self.scanner = scanner
        self.batcher = batcher
        self.decisions = decisions
        self.evidence = evidence
        self.metrics = metrics
        self.deadline_s = deadline_s
        self.config_version = config_version
        self._pool = ThreadPoolExecutor(scan_workers, thread_name_prefix="warden-scan")
        # large files wait here, not in a thread, so one thread (and the decoder
        # process kept for small files) stays free for everything else
        self._heavy = asyncio.Semaphore(max(scan_workers - 1, 1))
        # decisions are written by few threads in arrival order: twenty SQLite writers
        # at once would wait on its lock in sleeps of up to 100 ms (busy_timeout), and
        # an ordinary upload's row with them
        sqlite = decisions is not None and decisions.database.url.startswith("sqlite")
        self._writer = ThreadPoolExecutor(1 if sqlite else 4, thread_name_prefix="warden-log")

    async def close(self) -> None:
        await self.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=True)
        await asyncio.to_thread(self.scanner.close)

    async def _scan(
        self, data: bytes, context: ScanContext, holder: list[Prepared], limit: float
    ) -> Verdict:
        loop = asyncio.get_running_loop()
        prepare = functools.partial(
            self.scanner.prepare, data, context, give_up_at=time.monotonic() + limit
        )
        if self.scanner.decoder.is_heavy(data):
            # the slot is held until the thread is done, not until the deadline
            # answers: a thread still decoding an abandoned file is still busy
            await self._heavy.acquire()
            running = loop.run_in_executor(self._pool, prepare)
            running.add_done_callback(lambda _: self._heavy.release())
            item = await asyncio.shield(running)
        else:
            item = await loop.run_in_executor(self._pool, prepare)
        holder.append(item)
        if item.verdict is not None:
            return self.scanner.finish([item])[0]  # decided without the model: no model call
        return await self.batcher.submit(item)

    async def check(
        self, data: bytes, context: ScanContext, *, deadline_s: float | None = None
    ) -> GateOutcome:
        """Scan, record and (when due) preserve; the answer to give. `deadline_s`
        overrides the gate's deadline (the hook's differs per source)."""
        started = time.perf_counter()
        holder: list[Prepared] = []
        limit = self.deadline_s if deadline_s is None else deadline_s
        try:
            verdict = await asyncio.wait_for(self._scan(data, context, holder, limit), limit)
        except TimeoutError:
            item = holder[0] if holder else Prepared(context, hashing.sha256(data), len(data))
            error = ScanTimeout(f"no decision within the {limit * 1000:.0f} ms deadline")
            verdict = self.scanner.failure(item, error)
            log.warning("scan_timeout for %s (%s)", item.sha256, context.source)
        except Exception as exc:  # nothing is answered without a verdict and its row
            log.exception("scan failed for a %s file of %d bytes", context.source, len(data))
            item = holder[0] if holder else Prepared(context, hashing.sha256(data), len(data))
            failed = ScanError(f"the scan failed: {type(exc).__name__}: {exc}")
            verdict = self.scanner.failure(item, failed)
        return await self._settle(verdict, context, data, started)

    async def refuse_unread(
        self, context: ScanContext, code: str, message: str, size: int, detail: dict[str, Any]
    ) -> GateOutcome:
        """Record a refusal made before the body was read (no hash is known)."""
        verdict = Verdict(Decision.REJECT, (Reason(code, message, detail),), sha256="", size=size)
        return await self._settle(verdict, context, None, time.perf_counter())

    async def _settle(
        self, verdict: Verdict, context: ScanContext, data: bytes | None, started: float
    ) -> GateOutcome:
        evidence_id = None
        if self.evidence is not None and data is not None and should_preserve(verdict):
            evidence_id, verdict = await self._preserve(verdict, context, data)
        decision_id = None
        if self.decisions is not None:
            try:
                decision_id = await asyncio.get_running_loop().run_in_executor(
                    self._writer,
                    functools.partial(
                        self.decisions.record,
                        verdict,
                        source=context.source,
                        uploader=context.uploader,
                        config_version=self.config_version,
                        evidence_id=evidence_id,
                    ),
                )
            except Exception as exc:
                log.exception("decision for %s could not be written", verdict.sha256)
                verdict = self._store_failure(verdict, context, exc)
        if self.metrics is not None:
            self.metrics.observe(verdict, time.perf_counter() - started)
        return GateOutcome(verdict, decision_id, evidence_id)

    def _store_failure(self, verdict: Verdict, context: ScanContext, exc: Exception) -> Verdict:
        error = ScanError(f"the decision could not be recorded: {exc}", code="store_error")
        if verdict.decision is Decision.REJECT:  # still refused; say the log missed it too
            reason = Reason(error.code, error.message, {"fail_mode": "closed"})
            return replace(verdict, reasons=(*verdict.reasons, reason))
        item = Prepared(context, verdict.sha256, verdict.size)
        failed = self.scanner.failure(item, error)
        return replace(verdict, decision=failed.decision, reasons=failed.reasons)

    async def _preserve(
        self, verdict: Verdict, context: ScanContext, data: bytes
    ) -> tuple[str | None, Verdict]:
        """Write the evidence; its id, or None and the verdict saying it was not kept.

        Written before the decision, whose row then carries the id (the decision
        id is not known yet, so the evidence's metadata has none: the decision
        names the evidence, not the other way round)."""
        assert self.evidence is not None
        metadata = evidence_metadata(
            verdict,
            source=context.source,
            uploader=context.uploader,
            declared_type=context.declared_type,
            config_version=self.config_version,
            decision_id=None,
        )
        try:
            evidence_id = await asyncio.to_thread(self.evidence.preserve, data, metadata)
        except Exception as exc:
            log.exception("EVIDENCE NOT PRESERVED for %s", verdict.sha256)
            if self.metrics is not None:
                self.metrics.evidence_errors.inc()
            error = exc if isinstance(exc, EvidenceError) else EvidenceError(str(exc))
            reason = Reason(
                error.code, f"the media could not be preserved as evidence: {error.message}"
            )
            return None, replace(verdict, reasons=(*verdict.reasons, reason))
        return evidence_id, verdict
