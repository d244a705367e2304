"""Building the scanner: decode limits, the decoder pool, the classifier, failure modes.

What `warden serve`, `warden scan`, `warden eval` and rescans share: one way to
turn settings into a `Scanner`, so a file gets the same verdict whichever path
scanned it. `config_version` is the digest written on every decision.
"""

from __future__ import annotations

import hashlib
import logging

from warden.config import Settings
from warden.domain.policy import FailMode
from warden.domain.ports import HashMatcher
from warden.errors import ModelUnavailable
from warden.media.classify import Classifier, NudeNetClassifier
from warden.media.decode import DecodeLimits
from warden.media.decoder_pool import Decoder, DecoderPool, InProcessDecoder
from warden.media.keypoint_stage import KeypointStage
from warden.media.pipeline import Scanner

log = logging.getLogger(__name__)


def decode_limits(settings: Settings) -> DecodeLimits:
    """The decoder's limits from `[media]`."""
    m = settings.media
    return DecodeLimits(
        max_bytes=m.max_bytes,
        max_pixels=m.max_pixels,
        max_side=m.max_side,
        max_frames=m.max_frames,
        sample_frames=m.sample_frames,
        timeout_s=m.decode_timeout_s,
        scan_side=m.scan_side,
        max_scans=m.max_scans,
        max_scan_pixels=m.max_scan_pixels,
        max_decoded_pixels=m.max_decoded_pixels,
    )


def build_decoder(settings: Settings, workers: int | None = None) -> Decoder:
    """Where files are decoded: `workers` (default `server.scan_workers`) killable
    processes with memory and CPU limits, or the calling thread when
    `media.isolation = "thread"`. Processes start on first use or `Scanner.start`."""
    if settings.media.isolation == "thread":
        return InProcessDecoder()
    return DecoderPool(
        workers or settings.server.scan_workers, memory_mb=settings.media.decoder_memory_mb
    )


def build_classifier(settings: Settings) -> Classifier:
    """The configured classifier, loaded and run once (raises ModelUnavailable)."""
    m = settings.model
    model_path = m.path
    if m.precision == "int8":
        # lazy: quantizing pulls in onnxruntime's quantization tools, for int8 only
        from warden.media.quantize import quantized_model

        model_path = quantized_model(m.path, settings.data_dir, m.calibration_dir)
    classifier = NudeNetClassifier(
        model_path,
        providers=m.providers,
        threads=m.threads,
        batch_size=m.batch_size,
        min_score=m.min_score,
    )
    classifier.warm_up()
    return classifier


def build_scanner(
    settings: Settings,
    *,
    classifier: Classifier | None = None,
    matcher: HashMatcher | None = None,
    require_model: bool = False,
    decode_workers: int | None = None,
    keypoints: KeypointStage | None = None,
) -> Scanner:
    """A scanner for these settings.

    Without `require_model`, a model that cannot load leaves the scanner
    without a classifier: every scan then answers with its source's failure
    mode and the reason `model_unavailable`, which is what fail-closed means.
    `keypoints`: the held pictures' stage (filled by services/keypoint_sync.py).
    """
    error: str | None = None
    if classifier is None:
        try:
            classifier = build_classifier(settings)
        except ModelUnavailable as exc:
            if require_model:
                raise
            log.error("classifier unavailable: %s", exc)
            error = exc.message
    policy = settings.policy
    return Scanner(
        limits=decode_limits(settings),
        policy=policy.label_policy(),
        classifier=classifier,
        fail_modes=fail_modes(settings),
        matcher=matcher,
        classifier_error=error,
        decoder=build_decoder(settings, decode_workers),
        robust_hashes=settings.banks.robust_matching,
        keypoints=keypoints,
    )


def fail_modes(settings: Settings) -> dict[str, FailMode]:
    """The failure mode per source. `remote_media = "allow"` opens remote fetches; an
    ingest the proxy cannot attribute (`ingest`) gets the stricter of upload and remote."""
    upload = settings.policy.fail_mode_upload
    remote = (
        FailMode.OPEN
        if settings.federated.remote_media == "allow"
        else settings.policy.fail_mode_remote
    )
    both_open = upload is FailMode.OPEN and remote is FailMode.OPEN
    return {
        "upload": upload,
        "remote": remote,
        "ingest": FailMode.OPEN if both_open else FailMode.CLOSED,
        "api": FailMode.CLOSED,
        "cli": FailMode.CLOSED,
        "rescan": FailMode.CLOSED,
    }


def config_version(settings: Settings) -> str:
    """A short digest of the settings that decide outcomes (policy, model cut-off)."""
    effective = settings.policy.model_dump_json() + f"|min_score={settings.model.min_score}"
    return hashlib.sha256(effective.encode()).hexdigest()[:16]
