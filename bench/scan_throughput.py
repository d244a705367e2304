"""Scanner throughput: Warden's scanner against the reference pipeline, same run.

Reference = what an admin would build from the parts: cv2 decodes the file,
NudeNet's `NudeDetector.detect` classifies it, `pdqhash.compute` hashes it.
Warden = `Scanner.scan`, float and int8. Each side runs as one stream with
two onnxruntime threads and as two streams of one thread (how `warden scan
--workers 2` and the service run); ratios are given against the reference's
default and against its best configuration. Prints images/s, the ratio, ms per 12 MP JPEG, and how
often the two agree on decisions and on the labels above threshold (score
differences count scores under NudeNet's reporting floor, 0.25, as 0.25).

    .venv/bin/python bench/scan_throughput.py [--repeat 3] [--scan-side 640]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pdqhash
from nudenet import NudeDetector
from PIL import Image
from skimage import data

from warden.config import load_settings
from warden.domain.policy import LabelPolicy
from warden.media.classify import NUDENET_LABELS
from warden.media.pipeline import ScanContext
from warden.services import build_scanner

SMALL_SIZES = ((640, 480), (800, 600), (1000, 750), (1024, 683))
FLOOR = 0.25
NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "cat",
    "camera",
)


def jpeg(image: Image.Image, size: tuple[int, int], quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def corpus() -> tuple[list[bytes], list[bytes]]:
    images = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in NAMES]
    small = [jpeg(im, size) for im in images for size in SMALL_SIZES]
    big = [jpeg(im, (4000, 3000)) for im in images[:4]]
    return small, big


def reference(detector: NudeDetector) -> Callable[[bytes], dict[str, float]]:
    def run(payload: bytes) -> dict[str, float]:
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        pdqhash.compute(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        scores = dict.fromkeys(NUDENET_LABELS, 0.0)
        for det in detector.detect(bgr):
            scores[det["class"]] = max(scores[det["class"]], float(det["score"]))
        return scores

    return run


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` wall time of fn(), in seconds (best = least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def agreement(
    ref: list[dict[str, float]], ours: list[dict[str, float]], policy: LabelPolicy
) -> str:
    decisions = sum(
        policy.judge(a)[0] == policy.judge(b)[0] for a, b in zip(ref, ours, strict=True)
    )
    above = sum(
        {k for k, v in a.items() if v >= 0.5} == {k for k, v in b.items() if v >= 0.5}
        for a, b in zip(ref, ours, strict=True)
    )
    # below 0.25 NudeNet reports nothing (Warden reports down to model.min_score)
    diff = max(
        abs(max(a[k], FLOOR) - max(b[k], FLOOR))
        for a, b in zip(ref, ours, strict=True)
        for k in NUDENET_LABELS
    )
    n = len(ref)
    return f"decisions agree {decisions}/{n}, labels >= 0.5 agree {above}/{n}, max score difference {diff:.3f}"


def parallel(fn: Callable[[bytes], object], items: list[bytes], workers: int, repeat: int) -> float:
    """Best wall time to push every item through fn with `workers` threads."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, items))  # warm-up
        return timed(lambda: list(pool.map(fn, items)), repeat)


def reference_detector(threads: int) -> NudeDetector:
    detector = NudeDetector()
    if threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        detector.onnx_session = ort.InferenceSession(
            detector.onnx_session._model_path, options, providers=["CPUExecutionProvider"]
        )
    return detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--scan-side",
        type=int,
        default=None,
        help="media.scan_side for Warden (default: its default)",
    )
    args = parser.parse_args()

    small, big = corpus()
    n = len(small)
    print(f"corpus: {n} JPEGs of 0.3-0.8 MP, {len(big)} JPEGs of 12 MP, 2 cores")
    ref_default = reference(reference_detector(0))  # NudeNet's default: every core
    ref_scores = [ref_default(p) for p in small]
    results: dict[str, float] = {}
    results["reference, 1 stream x 2 threads (NudeNet default)"] = parallel(
        ref_default, small, 1, args.repeat
    )
    ref_single = reference(reference_detector(1))
    results["reference, 2 streams x 1 thread"] = parallel(ref_single, small, 2, args.repeat)
    t_ref_big = timed(lambda: [ref_default(p) for p in big], args.repeat) / len(big)
    best_ref = min(results.values())

    agreements: list[str] = []
    big_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp))
        if args.scan_side:
            settings.media.scan_side = args.scan_side
        print(f"warden media.scan_side = {settings.media.scan_side}")
        policy = settings.policy.label_policy()
        ctx = ScanContext(source="cli")
        float_scores: list[dict[str, float]] = []
        for precision in ("float", "int8"):
            settings.model.precision = precision  # type: ignore[assignment]
            for threads, workers in ((2, 1), (1, 2)):
                settings.model.threads = threads
                scanner = build_scanner(settings, require_model=True)
                label = f"warden {precision}, {workers} stream(s) x {threads} thread(s)"
                results[label] = parallel(
                    lambda p, s=scanner: s.scan(p, ctx), small, workers, args.repeat
                )
                if workers == 1:
                    big_ms[precision] = timed(
                        lambda s=scanner: [s.scan(p, ctx) for p in big], args.repeat
                    ) / len(big)
                    ours = [dict(scanner.scan(p, ctx).labels) for p in small]
                    agreements.append(
                        f"{precision} vs reference: {agreement(ref_scores, ours, policy)}"
                    )
                    if precision == "float":
                        float_scores = ours
                    else:
                        agreements.append(f"int8 vs float: {agreement(float_scores, ours, policy)}")

    t_ref_default = results["reference, 1 stream x 2 threads (NudeNet default)"]
    print(f"\n{'pipeline':52} {'img/s':>7} {'ms/img':>7} {'vs default':>10} {'vs best ref':>11}")
    for label, t in results.items():
        print(
            f"{label:52} {n / t:7.1f} {t / n * 1000:7.1f} {t_ref_default / t:9.2f}x {best_ref / t:10.2f}x"
        )
    print(
        f"\n12 MP JPEG: reference {t_ref_big * 1000:.0f} ms; "
        + ", ".join(
            f"warden {k} {v * 1000:.0f} ms ({t_ref_big / v:.1f}x)" for k, v in big_ms.items()
        )
    )
    for line in agreements:
        print(line)
    print(f"(best of {args.repeat} runs each; compare ratios, not absolute times)")


if __name__ == "__main__":
    main()
