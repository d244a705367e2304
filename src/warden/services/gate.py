"""The media gate as a service: scan under a deadline, log, preserve, count.

What `/pictrs/validate` and `/api/v1/scan` share, with no FastAPI in it:
decode and hash in the scanner's decoder processes (waited on from a few
threads), classify in shared micro-batches, stop at the deadline with the
source's failure mode (`scan_timeout`), turn any other exception into a
`scan_error` verdict under the failure mode, and hand the verdict to the
decision recorder (services/recorder.py: evidence, then the row, BEFORE anyone
is answered; the rules for failed writes live there, shared with rescans).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from warden.domain.verdict import Decision, Reason, Verdict
from warden.errors import MediaError, ScanError, ScanTimeout
from warden.media import hashing
from warden.media.pipeline import Prepared, ScanContext, Scanner
from warden.media.preflight import DecodeLimits, preflight
from warden.services.alerts import Alerts
from warden.services.batcher import MicroBatcher
from warden.services.external_scan import ExternalScans
from warden.services.metrics import Metrics
from warden.services.recorder import DecisionRecorder, Facts
from warden.store.decisions import NOBODY, Attribution

log = logging.getLogger(__name__)


def _refused_from_bytes(data: bytes, limits: DecodeLimits) -> bool:
    """Whether the bytes alone refuse the file (a few C-speed passes over the bytes,
    cheap enough for the event loop); the scanner then refuses it without a decoder."""
    try:
        preflight(data, limits)
    except MediaError:
        return True
    except Exception:  # anything else is the scanner's to judge and record
        return False
    return False


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
        recorder: DecisionRecorder,
        metrics: Metrics | None,
        deadline_s: float,
        scan_workers: int,
        external: ExternalScans | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.scanner = scanner
        self.external = external  # services/external_scan.py; None: no scanner configured
        self.alerts = alerts  # services/alerts.py; None: no channel configured
        self.batcher = batcher
        self.recorder = recorder
        self.metrics = metrics
        self.deadline_s = deadline_s
        self._pool = ThreadPoolExecutor(scan_workers, thread_name_prefix="warden-scan")
        # files refused from their bytes alone (media/preflight.py) never queue for a
        # decoding thread: in a storm of bombs, ordinary uploads then wait only
        # behind files that really need decoding
        self._refusals = ThreadPoolExecutor(1, thread_name_prefix="warden-refuse")
        # large files wait here, not in a thread, so one thread (and the decoder
        # process kept for small files) stays free for everything else
        self._heavy = asyncio.Semaphore(max(scan_workers - 1, 1))

    @property
    def config_version(self) -> str:
        """The digest of the settings in force, written on every decision."""
        return self.recorder.config_version

    @config_version.setter
    def config_version(self, version: str) -> None:
        self.recorder.config_version = version

    async def close(self) -> None:
        await self.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._refusals.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.recorder.close)
        await asyncio.to_thread(self.scanner.close)

    async def _scan(
        self, data: bytes, context: ScanContext, holder: list[Prepared], limit: float
    ) -> Verdict:
        loop = asyncio.get_running_loop()
        prepare = functools.partial(
            self.scanner.prepare, data, context, give_up_at=time.monotonic() + limit
        )
        if _refused_from_bytes(data, self.scanner.limits):
            item = await loop.run_in_executor(self._refusals, prepare)
        elif self.scanner.decoder.is_heavy(data):
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
        self,
        data: bytes,
        context: ScanContext,
        *,
        deadline_s: float | None = None,
        attribution: Attribution = NOBODY,
    ) -> GateOutcome:
        """Scan, record and (when due) preserve; the answer to give. `deadline_s`
        overrides the gate's deadline (the hook's differs per source); `attribution`
        is who uploaded it, when the ingest proxy knows."""
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
        if self.external is not None:
            verdict = await self._consult(verdict, data, context, started, limit)
        return await self._settle(verdict, context, data, started, attribution)

    async def _consult(
        self, verdict: Verdict, data: bytes, context: ScanContext, started: float, limit: float
    ) -> Verdict:
        """Ask the external scanners due for this verdict within what is left of the
        deadline, and combine their verdicts with it (domain/scanners.combine); each
        one is recorded as a reason. Never raises: a bug here fails the source closed."""
        assert self.external is not None
        left = limit - (time.perf_counter() - started)
        mime = verdict.media.mime if verdict.media else (context.declared_type or "")
        try:
            return await self.external.apply(
                verdict, data, mime or "application/octet-stream", context.source, budget_s=left
            )
        except Exception as exc:
            log.exception("external scanners failed for %s", verdict.sha256)
            item = Prepared(context, verdict.sha256, verdict.size)
            return self.scanner.failure(item, ScanError(f"external scanners failed: {exc}"))

    async def refuse_unread(
        self,
        context: ScanContext,
        code: str,
        message: str,
        size: int,
        detail: dict[str, Any],
        *,
        attribution: Attribution = NOBODY,
    ) -> GateOutcome:
        """Record a refusal made before the body was read (no hash is known)."""
        verdict = Verdict(Decision.REJECT, (Reason(code, message, detail),), sha256="", size=size)
        return await self._settle(verdict, context, None, time.perf_counter(), attribution)

    async def answer_from(
        self, decided: Verdict, context: ScanContext, attribution: Attribution
    ) -> GateOutcome:
        """Record, without scanning again, a decision already reached for the same bytes
        (the ingest proxy's, named by `attribution.linked_decision_id`): the validation
        hook's backstop for media the proxy scanned. No evidence is written twice: the
        proxy's row already names it."""
        return await self._settle(decided, context, None, time.perf_counter(), attribution)

    async def _settle(
        self,
        verdict: Verdict,
        context: ScanContext,
        data: bytes | None,
        started: float,
        attribution: Attribution = NOBODY,
    ) -> GateOutcome:
        facts = Facts(context.source, context.uploader, context.declared_type, None, attribution)
        recorded = await self.recorder.arecord(verdict, facts, data)
        if self.metrics is not None:
            self.metrics.observe(recorded.verdict, time.perf_counter() - started)
        if self.alerts is not None:  # queued, never awaited: alerts do not slow answers
            self.alerts.observe(recorded.verdict, source=context.source, uploader=context.uploader)
        return GateOutcome(recorded.verdict, recorded.decision_id, recorded.evidence_id)
