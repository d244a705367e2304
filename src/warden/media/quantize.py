"""An int8 copy of the classifier, made on first use and cached in the data folder.

Static QDQ quantisation (onnxruntime.quantization), per-channel int8 weights,
uint8 activations, about 1.7x faster than float per model call on CPUs with
VNNI. Kept in float, because quantising them moves scores by more than the
±0.05 Warden promises against NudeNet's own `detect` (issue 17):

- the detection head's own operators (box decoding, the final sigmoids);
- `FLOAT_BLOCKS`: the stem (the first three blocks) and the head's three
  class branches. bench/quantize_search.py found them (see the comment on
  `FLOAT_BLOCKS`); they cost about 0.5 ms per model call (4.6 -> 5.0 ms, float
  8.5 ms, one thread).

What matters more than any option is what the activation ranges are calibrated
on: synthetic pictures leave the class logits' range short of 0, which caps
every score at 0.5 and loses faces. So the bundled model is quantised with
ranges measured once on ordinary photographs (`calibration/*.json`, made by
`bench/quantize_search.py --step ranges` from the tuning half of the corpus);
nothing is calibrated or downloaded at start. An admin's own model is
calibrated on `calibration_dir` (a few hundred of the instance's ordinary
uploads), else on deterministic synthetic images, with a warning: then the
drift is not bounded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from warden.errors import ModelUnavailable
from warden.media.classify import bundled_model_path, file_digest, letterbox, to_batch

log = logging.getLogger(__name__)
_lock = threading.Lock()
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def synthetic_calibration(count: int = 48, size: int = 320, seed: int = 7) -> Iterator[Image.Image]:
    """Deterministic images covering smooth gradients, skin-like tones, edges and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(count):
        base = rng.uniform(0, 255, 3).astype(np.float32)
        tone = np.array([224, 172, 105], np.float32) * rng.uniform(0.4, 1.1) if i % 3 == 0 else base
        arr = tone[None, None, :] * (0.6 + 0.4 * np.stack([x, y, 1 - x], axis=2))
        for _ in range(int(rng.integers(2, 8))):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            mask = ((x - cx) ** 2 + (y - cy) ** 2) < r * r
            arr[mask] = rng.uniform(0, 255, 3)
        arr += rng.normal(0, rng.uniform(2, 25), arr.shape)
        yield Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def folder_calibration(folder: Path, limit: int = 200) -> Iterator[Image.Image]:
    """Up to `limit` decodable images from a folder (unreadable files are skipped)."""
    seen = 0
    for path in sorted(folder.rglob("*")):
        if seen >= limit:
            return
        if path.suffix.lower() not in _IMAGE_SUFFIXES:
            continue
        try:
            with Image.open(path) as im:
                im.draft("RGB", (320, 320))
                yield im.convert("RGB")
                seen += 1
        except (OSError, ValueError):
            continue


#: Node-name prefixes kept in float beyond the detection head's own operators.
#: Found with bench/quantize_search.py, ranges from ordinary photos: excluding
#: one block at a time barely moves the largest drift (0.12, a face at 0.60 read
#: at 0.47); a greedy pass showed the stem decides most of it (with the stem
#: int8, making every later block float still left 0.06-0.10). The stem and the
#: class-logit convs float: 0.042 on the tuning half, but 0.176 with the halves
#: swapped (ranges from pictures without faces, drift measured on faces): the
#: class branches' earlier convs clip. The stem and the three whole class
#: branches (cv3.k): 0.044 both ways, none > 0.05, for ~0.5 ms more per model
#: call than int8 everywhere (a 3-channel stem gains nothing from int8).
#: Not enough everywhere: through the scanner on the whole corpus
#: (bench/score_agreement.py --precision int8) a butterfly float reads as
#: FEMALE_GENITALIA_EXPOSED 0.38-0.40 reads 0.26-0.32 in three of its
#: encodings. Keeping blocks 3-9 float too fixes it (<= 0.02) but costs 5.9 ms
#: per call (float 8.2): hence int8 stays opt-in.
FLOAT_BLOCKS: tuple[str, ...] = (
    "/model.0/",
    "/model.1/",
    "/model.2/",
    "/model.22/cv3.0/",
    "/model.22/cv3.1/",
    "/model.22/cv3.2/",
)
#: Bumped whenever what `precision = "int8"` builds changes, so cached copies are rebuilt.
RECIPE = "q2"


def quantize(
    source: Path,
    target: Path,
    images: Iterator[Image.Image] | None,
    *,
    ranges: Path | None = None,
    exclude_prefixes: Sequence[str] = FLOAT_BLOCKS,
    per_channel: bool = True,
    reduce_range: bool = False,
    activation_symmetric: bool = False,
    quant_format: str = "QDQ",
    method: str = "MinMax",
    op_types: Sequence[str] | None = None,
    calibration_options: dict[str, object] | None = None,
    calibration_cache: Path | None = None,
) -> None:
    """Write an int8 copy of `source` to `target` (atomically).

    Activation ranges come from `ranges` (a calibration file, see
    `shipped_ranges`) when given, else from running the model on `images`.
    `calibration_cache` is where bench/quantize_search.py keeps (and reuses)
    the ranges it measured; the other keyword arguments exist for that bench,
    which compares them: their defaults are what `precision = "int8"` builds.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = ({"images": to_batch([letterbox(im, 320)[0]])} for im in images or ())

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        if ranges is not None:  # a copy: onnxruntime must never write beside the package
            calibration_cache = Path(tmp) / "ranges.json"
            shutil.copyfile(ranges, calibration_cache)
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        excluded = [
            n.name
            for n in graph.node
            if (n.name.startswith("/model.22/") and n.op_type != "Conv")
            or n.name.startswith(tuple(exclude_prefixes))
        ]
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=getattr(QuantFormat, quant_format),
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=getattr(CalibrationMethod, method),
            calibration_cache_path=calibration_cache,
            extra_options={
                "ActivationSymmetric": activation_symmetric,
                **(calibration_options or {}),
            },
        )
        with out.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(out, target)


def shipped_ranges(source: Path) -> Path | None:
    """The activation ranges measured on ordinary photos for this very model (found
    by the file's digest, whatever its name), when Warden ships them: the bundled
    NudeNet 320n model."""
    folder = Path(str(resources.files("warden.media") / "calibration"))
    found = sorted(folder.glob(f"*-{file_digest(source)[:12]}.json"))
    return found[0] if found else None


def quantized_model(
    model_path: Path | None, data_dir: Path, calibration_dir: Path | None = None
) -> Path:
    """The cached int8 copy of the model, made now if missing (a few seconds with
    shipped ranges, about a minute when calibrating)."""
    source = Path(model_path) if model_path else bundled_model_path()
    if not source.is_file():
        raise ModelUnavailable(f"model file not found: {source}")
    ranges = None if calibration_dir else shipped_ranges(source)
    tag = "folder" if calibration_dir else "photos" if ranges else "synthetic"
    name = f"{source.stem}-{file_digest(source)[:12]}-{tag}-{RECIPE}-int8.onnx"
    target = data_dir / "models" / name
    with _lock:
        if not target.is_file():
            if tag == "synthetic":
                log.warning(
                    "no calibration ranges ship for %s and model.calibration_dir is not set: "
                    "calibrating on synthetic images, int8 scores may drift from float by "
                    "more than 0.05",
                    source,
                )
            log.warning("making an int8 copy of %s (calibration: %s)", source, tag)
            images = (
                folder_calibration(calibration_dir)
                if calibration_dir
                else None
                if ranges
                else synthetic_calibration()
            )
            try:
                quantize(source, target, images, ranges=ranges)
            except Exception as exc:
                raise ModelUnavailable(f"cannot quantise {source}: {exc}") from exc
    return target
