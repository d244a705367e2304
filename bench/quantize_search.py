"""Quantisation search: which int8 copy of NudeNet's model keeps every score within
±0.05 of float, and what it costs.

The corpus is split by name (`split`): every other picture of scikit-image's
photos, the package photographs and the package wallpapers (tests/photos.py)
tunes the search; the rest is held out and only read by `--validate`.
Calibration images are either the synthetic set quantize.py ships
(`synthetic`) or the tuning pictures (`photos`); never held-out ones.

Steps (`--step`):

- `options`: per-tensor vs per-channel, QDQ vs QOperator, reduce_range,
  symmetric activations, MinMax / Entropy / Percentile, synthetic vs photo
  calibration, each with the detection head kept float (what shipped before);
- `head`: sets of head convolutions kept float (all three branches at once);
- `sensitivity`: from the shipped options, exclude one block (model.0 ..
  model.21, and each branch of the head: model.22/cv2.k boxes, cv3.k classes)
  at a time; then greedily exclude the block that lowers the drift most, until
  the drift is at most `--target`;
- `swapped`: ranges from the held-out half, drift on the tuning half (a
  check that the list found above is not fitted to its own calibration);
- `ranges`: measure the ranges shipped in warden/media/calibration/ (MinMax
  on the tuning views);
- `validate`: the exclusion list in warden.media.quantize, built as
  `precision = "int8"` builds it, on the held-out split through the scanner
  (`media.isolation = "thread"`), against float and against NudeDetector.detect.

Drift = the largest absolute difference of any label's best score, with scores
under NudeNet's reporting floor (0.25) counted as 0.25. CPU ms = process time
of one model call per canvas (one onnxruntime thread), float and the candidates
timed in turns in the same run (A B A B); the load average is printed with it.

    .venv/bin/python bench/quantize_search.py --step options|sensitivity|validate
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from PIL import Image, ImageOps
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.score_agreement import FLOOR, PHOTOS
from tests import photos

from warden.config import load_settings
from warden.media.classify import (
    NUDENET_LABELS,
    NudeNetClassifier,
    bundled_model_path,
    letterbox,
    to_batch,
)
from warden.media.quantize import FLOAT_BLOCKS, quantize, synthetic_calibration

SKIMAGE = PHOTOS  # the scikit-image photos score_agreement.py measures


def split() -> tuple[dict[str, Image.Image], dict[str, Image.Image]]:
    """(tuning, held out): alternate pictures of each list, in its own order."""
    tune: dict[str, Image.Image] = {}
    held: dict[str, Image.Image] = {}
    for i, name in enumerate(SKIMAGE):
        (tune if i % 2 == 0 else held)[name] = Image.fromarray(getattr(data, name)()).convert("RGB")
    for group in (photos.PHOTOGRAPHS, photos.WALLPAPERS):
        for i, file in enumerate(group):
            (tune if i % 2 == 0 else held)[Path(file).stem] = photos.picture(file, 1024)
    return tune, held


def views(images: dict[str, Image.Image]) -> list[Image.Image]:
    """Each picture at 1024 px and at 640 px (two slightly different canvases)."""
    out = []
    for image in images.values():
        for longest in (1024, 640):
            scale = longest / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            out.append(image.resize(size, Image.Resampling.LANCZOS))
    return out


def scores(model: Path, images: Sequence[Image.Image]) -> tuple[np.ndarray, float]:
    """Floored label scores (images x labels) and CPU ms per image (1 thread, batch 1)."""
    classifier = NudeNetClassifier(model, threads=1, batch_size=1, min_score=0.2)
    classifier.warm_up()
    start = time.process_time()
    results = [classifier.classify([im])[0] for im in images]
    ms = (time.process_time() - start) * 1000 / len(images)
    table = np.array([[r.scores[label] for label in NUDENET_LABELS] for r in results])
    return np.maximum(table, FLOOR), ms


def drift(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    diff = np.abs(a - b)
    return float(diff.max()), int((diff > 0.05).sum())


def model_ms(model: Path, canvases: list[np.ndarray], rounds: int = 3) -> float:
    """CPU ms per model call on fixed canvases (1 thread); the best of `rounds`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, {"images": canvases[0]})
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for canvas in canvases:
            session.run(None, {"images": canvas})
        best = min(best, (time.process_time() - start) * 1000 / len(canvases))
    return best


def canvases_of(images: Sequence[Image.Image]) -> list[np.ndarray]:
    """Every other view as a batch of one (mixed 4:3, 16:9, square and tall canvases)."""
    return [to_batch([letterbox(im, 320)[0]]) for im in images[::2]]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


class Search:
    """One preprocessed model, calibration caches per (images, method), candidates."""

    def __init__(self, work: Path, tune: dict[str, Image.Image]) -> None:
        self.work = work
        self.tune = tune
        self.images = views(tune)
        self.names = list(tune)
        self.float_model = bundled_model_path()
        self.reference, self.float_ms = scores(self.float_model, self.images)
        self.canvases = canvases_of(self.images)
        self.count = 0
        self.verbose = False

    def calibration(self, kind: str) -> Iterator[Image.Image]:
        """`synthetic`, `photos` (the tuning views) or `photos43` (the same, cropped to
        4:3 so every canvas has one shape, as the histogram methods need)."""
        if kind == "synthetic":
            return synthetic_calibration()
        if kind == "photos":
            return iter(views(self.tune))
        return (ImageOps.fit(im, (640, 480)) for im in views(self.tune))

    def build(self, exclude: Sequence[str] = (), calib: str = "synthetic", **options: Any) -> Path:
        self.count += 1
        out = self.work / f"cand{self.count}.onnx"
        method = options.get("method", "MinMax")
        tag = "-".join(f"{k}{v}" for k, v in options.get("calibration_options", {}).items())
        cache = self.work / f"calib-{calib}-{method}{tag}.json"
        quantize(
            self.float_model,
            out,
            self.calibration(calib),
            exclude_prefixes=exclude,
            calibration_cache=cache,
            **options,
        )
        return out

    def outliers(self, got: np.ndarray) -> None:
        """The scores beyond 0.05, by picture (view) and label, when `--verbose`."""
        if not self.verbose:
            return
        names = [n for n in self.names for _ in (1024, 640)]
        for i, k in zip(*np.nonzero(np.abs(self.reference - got) > 0.05), strict=True):
            print(
                f"    {names[i]} ({(1024, 640)[i % 2]} px) {NUDENET_LABELS[k]}: "
                f"float {self.reference[i, k]:.3f} int8 {got[i, k]:.3f}"
            )

    def measure(self, title: str, model: Path) -> tuple[float, int, float]:
        got, _ = scores(model, self.images)
        worst, beyond = drift(self.reference, got)
        self.outliers(got)
        ms_float = model_ms(self.float_model, self.canvases)
        ms = model_ms(model, self.canvases)
        print(
            f"{title:58} drift {worst:.3f}  >0.05: {beyond:3d}  "
            f"model {ms:5.2f} ms (float {ms_float:5.2f}, x{ms_float / ms:.2f})  {load()}",
            flush=True,
        )
        return worst, beyond, ms


def blocks(model: Path) -> list[str]:
    """Node-name prefixes: /model.0/ .. /model.21/, and the head's six branches."""
    names = [n.name for n in onnx.load(str(model)).graph.node]
    out = []
    for k in range(22):
        out.append(f"/model.{k}/")
    for branch in ("cv2", "cv3"):
        for k in range(3):
            out.append(f"/model.22/{branch}.{k}/")
    return [p for p in out if any(n.startswith(p) for n in names)]


def step_options(search: Search) -> None:
    print(f"{len(search.images)} tuning canvases; float model {search.float_ms:.2f} ms/image")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("shipped before: QDQ per-channel MinMax synthetic", {}, "synthetic"),
        ("per-tensor", {"per_channel": False}, "synthetic"),
        ("reduce_range", {"reduce_range": True}, "synthetic"),
        ("symmetric activations", {"activation_symmetric": True}, "synthetic"),
        ("QOperator", {"quant_format": "QOperator"}, "synthetic"),
        ("calibration on tuning photos", {}, "photos"),
        ("Percentile 99.999", {"method": "Percentile"}, "synthetic"),
        ("Percentile 99.999, tuning photos 4:3", {"method": "Percentile"}, "photos43"),
        ("calibration on tuning photos 4:3", {}, "photos43"),
        (
            "tuning photos, moving average",
            {"calibration_options": {"CalibMovingAverage": True}},
            "photos",
        ),
        ("tuning photos, Conv only", {"op_types": ["Conv"]}, "photos"),
        ("tuning photos, per-tensor", {"per_channel": False}, "photos"),
        ("tuning photos, symmetric activations", {"activation_symmetric": True}, "photos"),
        ("Entropy, tuning photos 4:3", {"method": "Entropy"}, "photos43"),
        ("Entropy", {"method": "Entropy"}, "synthetic"),
    ]
    for title, options, calib in cases:
        try:
            search.measure(title, search.build((), calib, **options))
        except Exception as exc:  # a failed option is a row of the table, not the end
            print(f"{title:58} failed: {exc}")


HEAD_SETS: tuple[tuple[str, ...], ...] = (
    tuple(f"/model.22/cv3.{k}/cv3.{k}.2/" for k in range(3)),  # the class logits' convs
    tuple(f"/model.22/cv3.{k}/" for k in range(3)),  # the class branches
    tuple(f"/model.22/cv{b}.{k}/cv{b}.{k}.2/" for b in (2, 3) for k in range(3)),  # last convs
    ("/model.22/",),  # the whole head
)


def step_head(search: Search, calib: str) -> None:
    """Sets of head convolutions kept float (one branch alone does not lower the
    largest drift: the other two branches still carry it)."""
    search.measure("all blocks int8 (head ops float)", search.build((), calib))
    for prefixes in HEAD_SETS:
        search.measure(f"  float: {' '.join(prefixes)}"[:58], search.build(prefixes, calib))


def step_sensitivity(search: Search, target: float, calib: str) -> None:
    base = search.build((), calib)
    worst, _, _ = search.measure("all blocks int8 (head ops float)", base)
    prefixes = blocks(base)
    single: dict[str, float] = {}
    for prefix in prefixes:
        single[prefix] = search.measure(f"  float: {prefix}", search.build([prefix], calib))[0]
    order = sorted(prefixes, key=lambda p: single[p])
    chosen: list[str] = []
    print(f"\ngreedy (target {target}):")
    while worst > target and order:
        prefix = order.pop(0)
        chosen.append(prefix)
        worst = search.measure(f"  float: {' '.join(chosen)}", search.build(chosen, calib))[0]
    print(f"chosen: {chosen}")


def step_swapped(search: Search, held: dict[str, Image.Image]) -> None:
    """The halves swapped: ranges from the held-out half (a few detections, no face),
    drift on the tuning half (two faces): does the exclusion list generalise, or
    does it only work on the pictures its ranges came from?"""
    search.tune = held  # calibration views now come from the held-out half
    stem = FLOAT_BLOCKS[:3]
    logits = tuple(f"/model.22/cv3.{k}/cv3.{k}.2/" for k in range(3))
    for title, exclude in (
        ("head ops only (the previous recipe)", ()),
        ("stem + class-logit convs", stem + logits),
        ("FLOAT_BLOCKS (stem + class branches)", FLOAT_BLOCKS),
    ):
        search.measure(f"swapped: {title}", search.build(exclude, "photos"))


def step_ranges(tune: dict[str, Image.Image], work: Path) -> None:
    """Measure the activation ranges on the tuning views (MinMax) and write them where
    warden.media.quantize.shipped_ranges finds them for the bundled model."""
    from warden.media.classify import file_digest

    source = bundled_model_path()
    folder = Path(__file__).resolve().parents[1] / "src/warden/media/calibration"
    dest = folder / f"{source.stem}-{file_digest(source)[:12]}.json"
    dest.unlink(missing_ok=True)
    start = time.process_time()
    quantize(source, work / "int8.onnx", iter(views(tune)), calibration_cache=dest)
    print(f"wrote {dest} ({dest.stat().st_size} bytes) in {time.process_time() - start:.1f} s CPU")


def reference_scores(detector: Any, payload: bytes) -> dict[str, float]:
    bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    out = dict.fromkeys(NUDENET_LABELS, 0.0)
    for det in detector.detect(bgr):
        out[det["class"]] = max(out[det["class"]], float(det["score"]))
    return out


def step_validate(held: dict[str, Image.Image], work: Path) -> None:
    from nudenet import NudeDetector

    from warden.media.pipeline import ScanContext
    from warden.services import build_scanner

    detector = NudeDetector()
    settings = load_settings(None, data_dir=work)
    settings.media.isolation = "thread"
    policy = settings.policy.label_policy()
    scanners = {}
    for precision in ("float", "int8"):
        settings.model.precision = precision  # type: ignore[assignment]
        start = time.process_time()
        scanners[precision] = build_scanner(settings, require_model=True)
        print(f"built {precision} scanner in {time.process_time() - start:.1f} s CPU ({load()})")
    rows = {k: [] for k in ("int8 vs float", "int8 vs NudeDetector", "float vs NudeDetector")}
    flips = {k: 0 for k in rows}
    total = 0
    for name, image in held.items():
        for longest, fmt in ((640, "JPEG"), (1024, "JPEG"), (2048, "JPEG"), (1024, "PNG")):
            scale = min(1.0, longest / max(image.size))
            im = image.resize((round(image.width * scale), round(image.height * scale)))
            buf = io.BytesIO()
            im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            payload = buf.getvalue()
            ref = reference_scores(detector, payload)
            got = {p: dict(s.scan(payload, ScanContext()).labels) for p, s in scanners.items()}
            pairs = {
                "int8 vs float": (got["int8"], got["float"]),
                "int8 vs NudeDetector": (got["int8"], ref),
                "float vs NudeDetector": (got["float"], ref),
            }
            for key, (a, b) in pairs.items():
                diff = [abs(max(a[k], FLOOR) - max(b[k], FLOOR)) for k in NUDENET_LABELS]
                rows[key].extend(diff)
                flips[key] += policy.judge(a)[0] != policy.judge(b)[0]
                if key == "int8 vs float" and max(diff) > 0.05:
                    label = NUDENET_LABELS[int(np.argmax(diff))]
                    print(
                        f"  {name}@{longest} {fmt}: {label} int8 {a[label]:.3f} float {b[label]:.3f}"
                    )
            total += 1
    print(
        f"\nheld out: {len(held)} pictures, {total} files, {total * len(NUDENET_LABELS)} label scores"
    )
    for key, values in rows.items():
        arr = np.array(values)
        print(
            f"  {key:22} max {arr.max():.3f}  mean {arr.mean():.4f}  "
            f">0.05: {int((arr > 0.05).sum())}  decisions differ: {flips[key]}/{total}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--step",
        choices=("options", "head", "sensitivity", "swapped", "ranges", "validate"),
        required=True,
    )
    parser.add_argument("--target", type=float, default=0.04)
    parser.add_argument("--verbose", action="store_true", help="list every score beyond 0.05")
    parser.add_argument(
        "--calibration", choices=("synthetic", "photos", "photos43"), default="synthetic"
    )
    args = parser.parse_args()
    tune, held = split()
    print(f"tuning: {', '.join(tune)}\nheld out: {', '.join(held)}\n{load()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.step == "ranges":
            step_ranges(tune, Path(tmp))
            return
        if args.step == "validate":
            print(f"excluded from int8 beyond the head's ops: {FLOAT_BLOCKS}")
            step_validate(held, Path(tmp))
            return
        search = Search(Path(tmp), tune)
        search.verbose = args.verbose
        if args.step == "options":
            step_options(search)
        elif args.step == "swapped":
            step_swapped(search, held)
        elif args.step == "head":
            step_head(search, args.calibration)
        else:
            step_sensitivity(search, args.target, args.calibration)


if __name__ == "__main__":
    main()
