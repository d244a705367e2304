"""Scanner throughput: Warden's scanner against the reference pipeline, same run.

Reference = what an admin would build from the parts: cv2 decodes the file,
NudeNet's `NudeDetector.detect` classifies it, `pdqhash.compute` hashes it.
Warden = `Scanner.scan`, float and int8, decoding in its worker processes
(`media.isolation = "process"`, the default) and, with `--isolation both`, in
the calling thread too. Each side runs as one stream with two onnxruntime
threads and as two streams of one thread (how `warden scan --workers 2` and the
service run); ratios are given against the reference's default and against its
best configuration. Prints images/s, the ratio, ms per 12 MP JPEG, and how
often the two agree on decisions and on the labels above threshold (score
differences count scores under NudeNet's reporting floor, 0.25, as 0.25).

Warden scans as the service does: with a hash bank matcher (`--bank`, 100,000
random PDQ hashes in one bank by default, none of which the corpus matches), so
its time includes the bank lookups and Warden's own robust hashes of the first
frame (media/variants.py), which run only when a matcher exists. `--bank 0`
leaves the matcher out (the layout of earlier runs).

The machine is shared and its load changes by the second, so the pipelines
take turns: every round times each of them once, and each keeps its best
round. A burst of load then costs every pipeline a round alike instead of
landing on whichever happened to run at the time.

    .venv/bin/python bench/scan_throughput.py [--repeat 5] [--scan-side 640] [--isolation both] [--bank 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
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
from warden.domain.banks import Bank, BankAction, BankKind
from warden.domain.policy import LabelPolicy
from warden.media.classify import NUDENET_LABELS
from warden.media.matcher import BankMatcher
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


def bank_matcher(size: int) -> BankMatcher | None:
    """A matcher with one PDQ bank of `size` random hashes (None for 0), warmed up as
    the service warms it (services/bank_sync.py)."""
    if size <= 0:
        return None
    rng = np.random.default_rng(16)
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "bench", BankKind.PDQ, BankAction.REJECT)])
    hashes = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    matcher.bulk_load(1, [(i, row.tobytes().hex()) for i, row in enumerate(hashes)])
    matcher.compact()
    BankMatcher.warm_up()
    return matcher


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


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by this process (every thread) and by the given children."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


class Stream:
    """One pipeline pushing every item through `fn` with `workers` threads, timed per
    round: the best wall time, and the CPU time it used (its decoder processes too)."""

    def __init__(
        self,
        fn: Callable[[bytes], object],
        workers: int,
        children: Callable[[], list[int]] = list,
    ) -> None:
        self.fn = fn
        self.pool = ThreadPoolExecutor(workers)
        self.children = children
        self.best = float("inf")
        self.cpu = 0.0
        self.items = 0

    def round(self, items: list[bytes]) -> None:
        pids = self.children()
        c0, t0 = _cpu_s(pids), time.perf_counter()
        list(self.pool.map(self.fn, items))
        self.best = min(self.best, time.perf_counter() - t0)
        self.cpu += _cpu_s(pids) - c0
        self.items += len(items)

    def reset(self) -> None:
        self.best, self.cpu, self.items = float("inf"), 0.0, 0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(self.items, 1) * 1000


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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--scan-side",
        type=int,
        default=None,
        help="media.scan_side for Warden (default: its default)",
    )
    parser.add_argument("--isolation", choices=("process", "thread", "both"), default="process")
    parser.add_argument(
        "--bank",
        type=int,
        default=100_000,
        help="random PDQ hashes in the matcher's bank (0: no matcher, no robust hashes)",
    )
    args = parser.parse_args()
    matcher = bank_matcher(args.bank)

    small, big = corpus()
    n = len(small)
    print(f"corpus: {n} JPEGs of 0.3-0.8 MP, {len(big)} JPEGs of 12 MP, 2 cores")
    ref_default = reference(reference_detector(0))  # NudeNet's default: every core
    ref_scores = [ref_default(p) for p in small]
    default_label = "reference, 1 stream x 2 threads (NudeNet default)"
    streams: dict[str, Stream] = {
        default_label: Stream(ref_default, 1),
        "reference, 2 streams x 1 thread": Stream(reference(reference_detector(1)), 2),
    }
    t_ref_big = timed(lambda: [ref_default(p) for p in big], args.repeat) / len(big)

    agreements: list[str] = []
    big_ms: dict[str, float] = {}
    isolations = ("process", "thread") if args.isolation == "both" else (args.isolation,)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp))
        if args.scan_side:
            settings.media.scan_side = args.scan_side
        print(
            f"warden media.scan_side = {settings.media.scan_side}, "
            + (
                f"matcher with a {args.bank}-hash PDQ bank, robust hashes"
                f" {'on' if settings.banks.robust_matching else 'off'}"
                if matcher
                else "no matcher"
            )
        )
        policy = settings.policy.label_policy()
        ctx = ScanContext(source="cli")
        float_scores: list[dict[str, float]] = []
        scanners = []
        for isolation in isolations:
            settings.media.isolation = isolation  # type: ignore[assignment]
            for precision in ("float", "int8"):
                settings.model.precision = precision  # type: ignore[assignment]
                for threads, workers in ((2, 1), (1, 2)):
                    settings.model.threads = threads
                    scanner = build_scanner(settings, matcher=matcher, require_model=True)
                    scanners.append(scanner)
                    label = (
                        f"warden {precision} {isolation}, {workers} stream(s) x {threads} thread(s)"
                    )
                    pids = getattr(scanner.decoder, "pids", list)
                    streams[label] = Stream(lambda p, s=scanner: s.scan(p, ctx), workers, pids)
                    if workers == 1 and isolation == isolations[0]:
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
                            agreements.append(
                                f"int8 vs float: {agreement(float_scores, ours, policy)}"
                            )
        for stream in streams.values():
            stream.round(small)  # warm-up: workers started, sessions run once
            stream.reset()
        for _ in range(args.repeat):
            for stream in streams.values():
                stream.round(small)
        for scanner in scanners:
            scanner.close()
        for stream in streams.values():
            stream.pool.shutdown()

    results = {label: stream.best for label, stream in streams.items()}
    t_ref_default = results[default_label]
    best_ref = min(t for label, t in results.items() if label.startswith("reference"))
    cpu_ref = streams["reference, 2 streams x 1 thread"].cpu_ms
    print(
        f"\n{'pipeline':58} {'img/s':>7} {'ms/img':>7} {'vs default':>10} {'vs best ref':>11}"
        f" {'cpu ms/img':>10} {'cpu vs ref':>10}"
    )
    for label, t in results.items():
        cpu = streams[label].cpu_ms
        print(
            f"{label:58} {n / t:7.1f} {t / n * 1000:7.1f} {t_ref_default / t:9.2f}x"
            f" {best_ref / t:10.2f}x {cpu:10.1f} {cpu_ref / cpu:9.2f}x"
        )
    print(
        "cpu ms/img: CPU time per image over every round (decoder processes included);"
        " 'cpu vs ref' against the reference's 2 x 1 layout, whose onnxruntime threads"
        " do not spin. It holds still when other work shares the cores, which wall"
        " time does not: two free cores give about 2000 / (cpu ms/img) images/s."
    )
    print(
        f"\n12 MP JPEG: reference {t_ref_big * 1000:.0f} ms; "
        + ", ".join(
            f"warden {k} {v * 1000:.0f} ms ({t_ref_big / v:.1f}x)" for k, v in big_ms.items()
        )
    )
    for line in agreements:
        print(line)
    print(f"(best of {args.repeat} interleaved rounds each; compare ratios, not absolute times)")


if __name__ == "__main__":
    main()
