"""Score agreement: Warden's scanner against `NudeDetector.detect`, same files, same run.

Both read the same JPEG bytes (the reference decodes them with cv2, as NudeNet
does when given a path). Per label it prints the largest and the mean absolute
difference of the best score, with scores under NudeNet's reporting floor
(0.25) counted as 0.25, since below it neither side reports anything. Files are
grouped by how Warden decodes them:

- "full decode": JPEGs whose shorter side is under twice `media.scan_side`, and
  every other format below that size: Warden's model input is NudeNet's,
  pixel for pixel, except the padding of the short side (a stride-sized canvas
  instead of a square);
- "draft decode": larger JPEGs, which Warden decodes with DCT scaling (1/2 to
  1/8) where NudeNet decodes every pixel and then samples it with its
  INTER_LINEAR resize. This is where the two must differ: the draft averages
  blocks of pixels the reference samples, which matters on pixel-level noise;
- "reduced (PNG)": other formats that large, which Warden reduces by an integer
  factor (a box filter) after decoding: the same averaging, for the same reason
  (the frames decoding hands over stay small).

Two corpora: scikit-image's photos (with synthetic gradients), each at its own
size and scaled to 1024, 1600 and 4000 px; and the photographs and wallpapers
Debian packages ship (`tests/photos.py`), scaled to 640, 1024 and 2048 px as
JPEG, and to 1024 px as PNG and WebP.

    .venv/bin/python bench/score_agreement.py [--scan-side 320] [--corpus all|skimage|packages]
        [--precision float|int8]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from nudenet import NudeDetector
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import photos
from tests.conftest import gradient

from warden.config import load_settings
from warden.media.classify import NUDENET_LABELS
from warden.media.pipeline import ScanContext
from warden.services import build_scanner

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "cat",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "moon",
    "coins",
    "brick",
    "clock",
    "cell",
)
FLOOR = 0.25
#: (longest side or None for the picture's own, format) per corpus
SKIMAGE_VERSIONS = ((None, "JPEG"), (1024, "JPEG"), (1600, "JPEG"), (4000, "JPEG"), (1600, "PNG"))
PACKAGE_VERSIONS = ((640, "JPEG"), (1024, "JPEG"), (None, "JPEG"), (1024, "PNG"), (1024, "WEBP"))

Versions = tuple[tuple[int | None, str], ...]


def ordinary(corpus: str) -> Iterator[tuple[str, Image.Image, Versions]]:
    if corpus in ("all", "skimage"):
        for name in PHOTOS:
            yield name, Image.fromarray(getattr(data, name)()).convert("RGB"), SKIMAGE_VERSIONS
        for seed in range(3):
            yield f"gradient{seed}", gradient(640, 480, seed=seed), SKIMAGE_VERSIONS
    if corpus in ("all", "packages"):
        for file in photos.PHOTOGRAPHS + photos.WALLPAPERS:
            yield Path(file).stem, photos.picture(file, 2048), PACKAGE_VERSIONS


def encoded(image: Image.Image, longest: int | None = None, fmt: str = "JPEG") -> bytes:
    if longest is not None:
        scale = longest / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def reference(detector: NudeDetector, payload: bytes) -> dict[str, float]:
    bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    scores = dict.fromkeys(NUDENET_LABELS, 0.0)
    for det in detector.detect(bgr):
        scores[det["class"]] = max(scores[det["class"]], float(det["score"]))
    return scores


def table(title: str, diffs: dict[str, list[float]]) -> float:
    print(f"\n{title}: {len(next(iter(diffs.values())))} files")
    print(f"  {'label':26} {'max':>6} {'mean':>7}")
    worst = 0.0
    for label, values in diffs.items():
        if max(values) > 0:
            print(f"  {label:26} {max(values):6.3f} {np.mean(values):7.4f}")
        worst = max(worst, max(values))
    print(f"  {'(every other label)':26} {0:6.3f}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scan-side", type=int, default=320)
    parser.add_argument("--corpus", choices=("all", "skimage", "packages"), default="all")
    parser.add_argument("--precision", choices=("float", "int8"), default="float")
    args = parser.parse_args()
    detector = NudeDetector()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp))
        settings.media.scan_side = args.scan_side
        settings.media.isolation = "thread"  # the same decode, without worker processes
        settings.model.precision = args.precision
        scanner = build_scanner(settings, require_model=True)
        groups: dict[str, dict[str, list[float]]] = {
            "full decode": {k: [] for k in NUDENET_LABELS},
            "draft decode": {k: [] for k in NUDENET_LABELS},
            "reduced (PNG)": {k: [] for k in NUDENET_LABELS},
            "reduced (WebP)": {k: [] for k in NUDENET_LABELS},
        }
        flips = 0
        worst: dict[tuple[str, str], float] = {}
        policy = settings.policy.label_policy()
        total = 0
        for name, image, versions in ordinary(args.corpus):
            for longest, fmt in versions:
                payload = encoded(image, longest, fmt)
                size = max(image.size) if longest is None else longest
                ref = reference(detector, payload)
                ours = dict(scanner.scan(payload, ScanContext()).labels)
                short = size * min(image.size) / max(image.size)
                group = "draft decode" if short >= 2 * args.scan_side else "full decode"
                if fmt != "JPEG":
                    reduced = f"reduced ({'PNG' if fmt == 'PNG' else 'WebP'})"
                    group = reduced if short >= 2 * args.scan_side else "full decode"
                for label in NUDENET_LABELS:
                    diff = abs(max(ref[label], FLOOR) - max(ours[label], FLOOR))
                    groups[group][label].append(diff)
                    kind = "synthetic noise" if name.startswith("gradient") else "photos"
                    if versions is PACKAGE_VERSIONS:
                        kind = "package pictures"
                    worst[group, kind] = max(worst.get((group, kind), 0.0), diff)
                    if diff > 0.05:
                        print(
                            f"  {name} at {size}px ({group}): {label} "
                            f"reference {ref[label]:.2f}, warden {ours[label]:.2f}"
                        )
                flips += policy.judge(ref)[0] != policy.judge(ours)[0]
                total += 1
        print(
            f"scan_side {args.scan_side}, model.precision {args.precision};"
            " differences over 0.05 are listed above"
        )
        for title, diffs in groups.items():
            if diffs[NUDENET_LABELS[0]]:
                table(title, diffs)
        print("\nlargest difference by kind of picture:")
        for (group, kind), value in sorted(worst.items()):
            print(f"  {group:14} {kind:16} {value:.3f}")
        print(f"\ndecisions that differ (default policy, first view): {flips}/{total}")


if __name__ == "__main__":
    main()
