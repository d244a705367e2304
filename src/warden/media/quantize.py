"""An int8 copy of the classifier, made on first use and cached in the data folder.

Static QDQ quantisation (onnxruntime.quantization) with per-channel weights:
about 1.4x faster than float on CPUs with VNNI. The detection head (box
decoding and the final sigmoids) stays in float, because quantising it clips
the scores themselves. Calibration runs on images from `calibration_dir` when
an admin gives one (a few hundred of the instance's ordinary uploads are
ideal), else on deterministic synthetic images; either way nothing is
downloaded. int8 scores drift from float by up to ~0.15 on ordinary photos,
which is why float stays the default: `bench/scan_throughput.py` prints the
agreement for the model at hand.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator
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


def quantize(source: Path, target: Path, images: Iterator[Image.Image]) -> None:
    """Write an int8 QDQ copy of `source` to `target` (atomically)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = ({"images": to_batch([letterbox(im, 320)[0]])} for im in images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        head = [
            n.name for n in graph.node if n.name.startswith("/model.22/") and n.op_type != "Conv"
        ]
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head,
        )
        with out.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(out, target)


def quantized_model(
    model_path: Path | None, data_dir: Path, calibration_dir: Path | None = None
) -> Path:
    """The cached int8 copy of the model, made now if missing."""
    source = Path(model_path) if model_path else bundled_model_path()
    if not source.is_file():
        raise ModelUnavailable(f"model file not found: {source}")
    tag = "folder" if calibration_dir else "synthetic"
    target = data_dir / "models" / f"{source.stem}-{file_digest(source)[:12]}-{tag}-int8.onnx"
    with _lock:
        if not target.is_file():
            log.warning(
                "making an int8 copy of %s (calibration: %s); this takes a minute", source, tag
            )
            images = (
                folder_calibration(calibration_dir) if calibration_dir else synthetic_calibration()
            )
            try:
                quantize(source, target, images)
            except Exception as exc:
                raise ModelUnavailable(f"cannot quantise {source}: {exc}") from exc
    return target
