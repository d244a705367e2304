"""The scan pipeline: bytes in, `Verdict` out.

    decode (limits, format by bytes) -> hash (SHA-256, PDQ per frame)
      -> hash banks (a match decides and spares the model)
      -> classify (one model call for every frame of every item) -> policy

`Scanner.scan` does it for one file; `prepare` + `finish` split it so the
service can decode in worker threads and send many images through the model in
one call. Decoding and hashing run in the scanner's `Decoder`: in production a
pool of killable worker processes (`decoder_pool`). A file that cannot be
decoded is refused with the decoder's reason; a scan that cannot finish (model
missing, a decoder process lost, any unexpected exception) answers with the
source's failure mode, closed (refuse) unless an admin chose open. No
exception leaves `prepare` or `finish`: every file gets a verdict to record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from PIL import Image

from warden.domain.policy import FailMode, LabelPolicy
from warden.domain.ports import BankMatch, HashMatcher
from warden.domain.verdict import Decision, FrameHash, Reason, Verdict, worst
from warden.errors import MediaError, ScanError
from warden.media import hashing, pdq_hasher, second_look, variants
from warden.media.classify import Classification, Classifier
from warden.media.decode import DecodedMedia, DecodeLimits
from warden.media.decoder_pool import Decoder, InProcessDecoder
from warden.media.keypoint_stage import KeypointStage

log = logging.getLogger(__name__)

SOURCES = ("upload", "remote", "ingest", "api", "cli", "rescan")


@dataclass(frozen=True)
class ScanContext:
    """Where the media came from; decides the failure mode and is logged."""

    source: str = "cli"
    filename: str | None = None
    declared_type: str | None = None
    uploader: str | None = None


@dataclass
class Prepared:
    """A file after decoding and hashing, waiting for the classifier (or decided)."""

    context: ScanContext
    sha256: str
    size: int
    decoded: DecodedMedia | None = None
    frames: tuple[FrameHash, ...] = ()
    verdict: Verdict | None = None  # set when decided without the model
    matches: tuple[BankMatch, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def images(self) -> list[Image.Image]:
        return [] if self.decoded is None else [f.image for f in self.decoded.frames]


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


class Scanner:
    """Decides whether media may enter. Thread-safe; one per process."""

    def __init__(
        self,
        *,
        limits: DecodeLimits,
        policy: LabelPolicy,
        classifier: Classifier | None,
        fail_modes: Mapping[str, FailMode] | None = None,
        matcher: HashMatcher | None = None,
        classifier_error: str | None = None,
        decoder: Decoder | None = None,
        robust_hashes: bool = True,
        keypoints: KeypointStage | None = None,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self.classifier = classifier
        self.fail_modes = dict(fail_modes or {})
        self.matcher = matcher
        self._classifier_error = classifier_error
        self.decoder: Decoder = decoder or InProcessDecoder()
        #: also match Warden's own trimmed and normalised hashes (`banks.robust_matching`)
        self.robust_hashes = robust_hashes
        #: held pictures matched by local features when no hash matched (issue 16)
        self.keypoints = keypoints

    def start(self) -> None:
        """Start (prewarm) the decoder's workers, if it has any, and load the compiled
        PDQ hasher and, when robust hashes are on, the border search (from numba's
        cache; compiled once on a first run), so that the first request does not
        wait for any of them."""
        self.decoder.start()
        pdq_hasher.warm_up()
        if self.robust_hashes and self.matcher is not None:
            variants.warm_up()

    def close(self) -> None:
        """Stop the decoder's workers; a later scan starts them again."""
        self.decoder.close()

    @property
    def model_name(self) -> str | None:
        return None if self.classifier is None else self.classifier.name

    def fail_mode(self, source: str) -> FailMode:
        return self.fail_modes.get(source, FailMode.CLOSED)

    # -- stages -----------------------------------------------------------------

    def prepare(
        self, data: bytes, context: ScanContext, *, give_up_at: float | None = None
    ) -> Prepared:
        """Decode and hash; decide at once when the media is refused or matched.
        `give_up_at` (`time.monotonic()`): when nobody will wait for the answer."""
        item = Prepared(context, hashing.sha256(data), len(data))
        t0 = time.perf_counter()
        try:
            analysis = self.decoder.run(data, self.limits, give_up_at=give_up_at)
        except MediaError as exc:
            item.timings["decode"] = _ms(t0)
            item.verdict = self._verdict(item, Decision.REJECT, (Reason(exc.code, exc.message),))
            return item
        except Exception as exc:  # a lost decoder or a bug: no decision, the failure mode
            item.timings["decode"] = _ms(t0)
            log.exception("decoding %s failed", item.sha256)
            item.verdict = self.failure(item, _scan_error(exc, "decoding failed"))
            return item
        item.decoded = analysis.media
        item.frames = analysis.frames
        # decode measured in the decoder process, hash here; the rest is the trip
        item.timings["decode"] = analysis.decode_ms
        item.timings["hash"] = analysis.hash_ms
        item.timings["decoder_wait"] = max(_ms(t0) - analysis.decode_ms - analysis.hash_ms, 0.0)
        if self.matcher is not None:
            t2 = time.perf_counter()
            try:
                # robust matching (issue 16): the frames' plain PDQ, as logged, plus
                # Warden's own hashes of the first frame (media/variants.py), asked
                # only of the matcher and never logged as the media's PDQ
                query = item.frames
                if self.robust_hashes and item.decoded is not None:
                    query = (*item.frames, *variants.robust_frames(item.decoded.frames))
                item.timings["robust_hash"] = _ms(t2)
                t2 = time.perf_counter()
                item.matches = tuple(self.matcher.match(item.sha256, query))
            except Exception as exc:
                log.exception("hash bank matching failed for %s", item.sha256)
                item.verdict = self.failure(item, _scan_error(exc, "hash bank matching failed"))
                return item
            item.timings["match"] = _ms(t2)
            if item.matches:
                decision = worst([m.decision for m in item.matches])
                if any(m.decision is Decision.ACCEPT for m in item.matches):
                    decision = Decision.ACCEPT  # an allow bank overrides a false positive
                item.verdict = self._verdict(item, decision, tuple(m.reason for m in item.matches))
        if item.verdict is None and self.keypoints is not None and self.keypoints.active:
            self._keypoint_stage(item)
        return item

    def finish(self, items: Sequence[Prepared]) -> list[Verdict]:
        """Classify every undecided item in one model call and apply the policy."""
        pending = [it for it in items if it.verdict is None]
        if pending:
            try:
                self._classify(pending)
            except Exception as exc:  # the model failing must not lose the decision
                error = (
                    exc if isinstance(exc, ScanError) else ScanError(f"classifier failed: {exc}")
                )
                log.exception("classifier failed for %d item(s)", len(pending))
                for it in pending:
                    it.verdict = self.failure(it, error)
        return [self._stamp(it) for it in items]

    def scan(self, data: bytes, context: ScanContext | None = None) -> Verdict:
        """Scan one file end to end."""
        return self.finish([self.prepare(data, context or ScanContext())])[0]

    def scan_many(self, files: Sequence[tuple[bytes, ScanContext]]) -> list[Verdict]:
        """Scan several files with one model call for all of them."""
        return self.finish([self.prepare(data, ctx) for data, ctx in files])

    def failure(self, item: Prepared, error: ScanError) -> Verdict:
        """The answer when no decision could be reached: the source's failure mode."""
        mode = self.fail_mode(item.context.source)
        if mode is FailMode.OPEN:
            reason = Reason(
                error.code,
                f"{error.message}; accepted because {item.context.source} fails open",
                {"fail_mode": "open"},
            )
            return self._verdict(item, Decision.ACCEPT, (reason,))
        reason = Reason(error.code, error.message, {"fail_mode": "closed"})
        return self._verdict(item, Decision.REJECT, (reason,))

    # -- internals --------------------------------------------------------------

    def _keypoint_stage(self, item: Prepared) -> None:
        """No hash matched: look the first frame up among the pictures Warden holds
        (media/keypoint_stage.py); a match decides like its bank, an error fails closed."""
        assert self.keypoints is not None
        if item.decoded is None or not item.decoded.frames:
            return
        t0 = time.perf_counter()
        try:
            found = self.keypoints.match(item.decoded.frames[0].image)
        except Exception as exc:
            log.exception("keypoint matching failed for %s", item.sha256)
            item.verdict = self.failure(item, _scan_error(exc, "keypoint matching failed"))
            return
        item.timings["keypoints"] = _ms(t0)
        if found:
            item.matches = tuple(found)
            decision = worst([m.decision for m in found])
            if any(m.decision is Decision.ACCEPT for m in found):
                decision = Decision.ACCEPT
            item.verdict = self._verdict(item, decision, tuple(m.reason for m in found))

    def _classify(self, pending: Sequence[Prepared]) -> None:
        if self.classifier is None:
            from warden.errors import ModelUnavailable

            raise ModelUnavailable(self._classifier_error or "no classifier is loaded")
        t0 = time.perf_counter()
        images: list[Image.Image] = []
        for it in pending:
            images.extend(it.images)
        results = self.classifier.classify(images)
        elapsed = _ms(t0)
        cursor = 0
        for it in pending:
            n = len(it.images)
            scores = _best_scores(results[cursor : cursor + n], self.classifier.labels)
            cursor += n
            it.timings["classify"] = elapsed * n / max(len(images), 1)
            decision, reasons = second_look.judge(
                self.policy, self.classifier, it.images, results[cursor - n : cursor], scores
            )
            it.verdict = self._verdict(it, decision, reasons, scores)

    def _verdict(
        self,
        item: Prepared,
        decision: Decision,
        reasons: tuple[Reason, ...],
        labels: Mapping[str, float] | None = None,
    ) -> Verdict:
        return Verdict(
            decision=decision,
            reasons=reasons,
            sha256=item.sha256,
            size=item.size,
            media=None if item.decoded is None else item.decoded.info,
            frames=item.frames,
            labels=MappingProxyType(dict(labels or {})),
            model=self.model_name if labels is not None else None,
            matches=tuple(m.as_dict() for m in item.matches),
        )

    def _stamp(self, item: Prepared) -> Verdict:
        assert item.verdict is not None
        item.timings["total"] = _ms(item.started)
        v = item.verdict
        return Verdict(
            decision=v.decision,
            reasons=v.reasons,
            sha256=v.sha256,
            size=v.size,
            media=v.media,
            frames=v.frames,
            labels=v.labels,
            timings=MappingProxyType(dict(item.timings)),
            model=v.model,
            matches=v.matches,
        )


def _scan_error(exc: Exception, what: str) -> ScanError:
    """`exc` as a ScanError (kept as is when it already is one)."""
    if isinstance(exc, ScanError):
        return exc
    return ScanError(f"{what}: {type(exc).__name__}: {exc}")


def _best_scores(results: Sequence[Classification], labels: Sequence[str]) -> dict[str, float]:
    """Each label's best score over the frames of one file."""
    best = dict.fromkeys(labels, 0.0)
    for result in results:
        for label, score in result.scores.items():
            if score > best.get(label, 0.0):
                best[label] = float(score)
    return best
