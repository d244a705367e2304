"""The media gate as a service: scan under a deadline, log, preserve, count.

What `/pictrs/validate` and `/api/v1/scan` share, with no FastAPI in it:
decode and hash in the scanner's decoder processes (waited on from a few
threads), classify in shared micro-batches, stop at the deadline with the
source's failure mode (`scan_timeout`), turn any other exception into a
`scan_error` verdict under the failure mode, and hand the verdict to the
decision recorder (services/recorder.py: evidence, then the row, BEFORE anyone
is answered; the rules for failed writes live there, shared with rescans).

In a storm of bombs, ordinary uploads must not queue behind them: a file refused
from its bytes is decided in a thread of its own, never a decoding thread, and
every decoding refusal is paced (`server.refusal_pace_ms`), which holds a client
that waits for each answer before sending the next bomb to a rate its
connections allow rather than the rate the refusals could reach.
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


def refusal_from_bytes(data: bytes, limits: DecodeLimits) -> MediaError | None:
    """What refuses the file from its bytes alone (media/preflight.py: C-speed byte
    scans that stop early, cheap enough for the event loop), or None; the gate then
    refuses it in its refusal thread without running the checks again."""
    try:
        preflight(data, limits)
    except MediaError as exc:
        return exc
    except Exception:  # anything else is the scanner's to judge and record
        return None
    return None


def decoding_refusals() -> frozenset[str]:
    """The codes of every refusal from decoding (the `MediaError` family): what a bomb,
    a fuzzed file or garbage is answered with, and what `server.refusal_pace_ms` paces."""
    codes: set[str] = set()
    pending: list[type[MediaError]] = [MediaError]
    while pending:
        kind = pending.pop()
        codes.add(kind.code)
        pending.extend(kind.__subclasses__())
    return frozenset(codes)


def _refused(data: bytes, context: ScanContext, refusal: MediaError) -> Prepared:
    """A file refused from its bytes, decided without a decoder: the verdict the scanner
    gives a `MediaError` (media/pipeline.py `Scanner.prepare`), nothing decoded."""
    item = Prepared(context, hashing.sha256(data), len(data))
    reasons = (Reason(refusal.code, refusal.message),)
    item.verdict = Verdict(Decision.REJECT, reasons, sha256=item.sha256, size=item.size)
    item.timings["decode"] = 0.0
    return item


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
        refusal_pace_s: float = 0.0,
    ) -> None:
        self.scanner = scanner
        self.external = external  # services/external_scan.py; None: no scanner configured
        self.alerts = alerts  # services/alerts.py; None: no channel configured
        self.batcher = batcher
        self.recorder = recorder
        self.metrics = metrics
        self.deadline_s = deadline_s
        #: decoding refusals are answered no sooner than this after their scan began
        #: (`server.refusal_pace_ms`, a tarpit; see `_pace`)
        self.refusal_pace_s = refusal_pace_s
        self._paced = decoding_refusals()
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
        refusal = refusal_from_bytes(data, self.scanner.limits)
        if refusal is not None:
            # hashed in the refusal thread (hashlib lets go of the GIL), the checks
            # not run again: the loop's answer is the verdict
            item = await loop.run_in_executor(self._refusals, _refused, data, context, refusal)
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
        outcome = await self._settle(verdict, context, data, started, attribution)
        await self._pace(outcome.verdict, started, limit)
        return outcome

    async def _pace(self, verdict: Verdict, started: float, limit: float) -> None:
        """Hold a decoding refusal until `refusal_pace_s` (at most half the deadline)
        has passed since its scan began; its row is already written.

        A tarpit: a client that sends its next bomb as soon as the last is answered
        (pict-rs relaying a script's uploads, or anyone who can reach the hook) gets
        at most its connections / the pace per second, so a storm of them cannot keep
        the event loop, the decoders and the CPU busy at whatever rate the refusals
        allow (360 a second with 20 connections, unpaced). Sleeping costs nothing, and
        ordinary uploads, accepted or refused for a label or a hash, are never held.
        A client that does not wait for answers is not slowed: the pace bounds
        concurrency times rate, not rate alone (bench/bomb_storm.py --rate)."""
        if self.refusal_pace_s <= 0 or verdict.decision is not Decision.REJECT:
            return
        if not verdict.reasons or verdict.reasons[0].code not in self._paced:
            return
        wait = min(self.refusal_pace_s, limit / 2) - (time.perf_counter() - started)
        if wait > 0:
            await asyncio.sleep(wait)

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
