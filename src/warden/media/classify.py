"""The classifier: NudeNet's 320n detector run with onnxruntime, vectorised.

NudeNet ships its YOLOv8-style ONNX model inside the `nudenet` wheel; Warden
loads that file (or one given by path) and does the pre- and post-processing
itself with NumPy: letterboxing into one batch tensor, one model call for many
images, and a post-processing pass that thresholds every candidate box of the
whole batch at once instead of NudeNet's Python loop over 2,100 boxes per image.

Scores agree with `NudeDetector.detect` because the model sees the same pixels:
the same cv2 `INTER_LINEAR` resize at the same scale (NudeNet pads to a square
and lets `blobFromImage` resize it; an antialiased Pillow resize shifted scores
by up to 0.24 on noisy pictures), the same B, G, R channel order, the same
class-agnostic suppression over the same box geometry. One difference is kept
on purpose: the canvas is padded only to the next multiple of 32 on the short
side, not to a square (20% less work for a 4:3 photo, scores within 0.03 on the
photos in bench/score_agreement.py). What decoding hands over differs for large
files (a JPEG decoded in draft mode, a frame reduced by an integer factor): see
bench/score_agreement.py for the measured effect.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from warden.errors import ModelUnavailable

#: The 18 labels of NudeNet's 320n model, in output-channel order.
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)

#: NudeNet keeps boxes scoring >= 0.2, then cv2.dnn.NMSBoxes drops those < 0.25.
NUDENET_MIN_SCORE = 0.25
NMS_IOU = 0.45


@dataclass(frozen=True)
class Detection:
    """One box after suppression, in the coordinates of the image passed in."""

    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True)
class Classification:
    """Each label's best score (0.0 when absent) and the boxes behind them."""

    scores: Mapping[str, float]
    detections: tuple[Detection, ...]


class Classifier(Protocol):
    """What the pipeline needs from a classifier; tests may pass any such object."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def classify(self, images: Sequence[Image.Image]) -> list[Classification]: ...


@runtime_checkable
class MultiScale(Protocol):
    """A classifier that can also look at images at another input size."""

    def classify_at(self, images: Sequence[Image.Image], size: int) -> list[Classification]: ...


def bundled_model_path() -> Path:
    """The 320n.onnx inside the installed nudenet package (no download, ever)."""
    try:
        path = Path(str(resources.files("nudenet") / "320n.onnx"))
    except ModuleNotFoundError as exc:
        raise ModelUnavailable(
            "the nudenet package is not installed and no model path is set"
        ) from exc
    if not path.is_file():
        raise ModelUnavailable(f"the bundled NudeNet model is missing at {path}")
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: The model's coarsest stride: a canvas side must be a multiple of it.
STRIDE = 32


def letterbox(image: Image.Image, size: int, stride: int = STRIDE) -> tuple[np.ndarray, float]:
    """Scale the longest side to `size` exactly as NudeNet does, on a stride-sized canvas.

    NudeNet pads the image with black (right and bottom) to a square, and
    `cv2.dnn.blobFromImage` resizes that square with `INTER_LINEAR`, which
    samples rather than averages when shrinking. Here the image is padded only
    as far as the canvas needs and resized with the same call and the same
    scale factor (`fx`/`fy`, so the sampling grid is NudeNet's), then the canvas
    is cut at the next multiple of the stride: the model is fully convolutional,
    so a 4:3 photo runs at 320x256 instead of 320x320. Returns the HxWx3 uint8
    RGB canvas and the scale from the image to it.
    """
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = rgb.shape[:2]
    longest = max(width, height)
    scale = size / longest
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas_h, canvas_w = -(-new_h // stride) * stride, -(-new_w // stride) * stride
    # source pixels the canvas samples (+2 for the interpolation), black beyond the image
    pad_h = max(height, min(longest, -(-canvas_h * longest // size) + 2))
    pad_w = max(width, min(longest, -(-canvas_w * longest // size) + 2))
    padded = cv2.copyMakeBorder(
        rgb, 0, pad_h - height, 0, pad_w - width, cv2.BORDER_CONSTANT, value=(0, 0, 0)
    )
    resized = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)
    h, w = min(canvas_h, resized.shape[0]), min(canvas_w, resized.shape[1])
    canvas[:h, :w] = resized[:h, :w]
    return canvas, scale


def to_batch(canvases: Sequence[np.ndarray]) -> np.ndarray:
    """Stack HxWx3 RGB uint8 canvases into the model's NCHW float32 tensor in [0, 1].

    The channels go in as B, G, R: that is what NudeNet itself feeds the model
    (cv2 reads BGR, `cvtColor(RGBA2BGR)` swaps to RGB, then `blobFromImage(...,
    swapRB=True)` swaps back), and RGB input shifts scores by up to 0.1 and
    flips decisions near a threshold.

    Each channel plane is scaled straight into the output (one pass, no float
    copy of the whole batch to transpose afterwards): a quarter of the time of
    stack, cast, scale and transpose, with bit-identical values.
    """
    height, width = canvases[0].shape[:2]
    batch = np.empty((len(canvases), 3, height, width), dtype=np.float32)
    scale = np.float32(1.0 / 255.0)
    for i, canvas in enumerate(canvases):
        for channel in range(3):
            np.multiply(canvas[..., 2 - channel], scale, out=batch[i, channel], casting="unsafe")
    return batch


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy class-agnostic suppression; boxes are x1, y1, x2, y2. Returns kept indices."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    output: np.ndarray,
    scales: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    labels: Sequence[str],
    min_score: float,
    iou: float = NMS_IOU,
) -> list[Classification]:
    """Turn the raw (N, 4 + classes, anchors) output into per-image label scores.

    The score cut is applied to the whole batch in one NumPy pass; only the few
    surviving candidates of each image reach suppression.
    """
    rows = np.transpose(output, (0, 2, 1))  # N, anchors, 4 + classes
    class_scores = rows[:, :, 4:]
    best = class_scores.max(axis=2)
    image_idx, anchor_idx = np.nonzero(best >= min_score)
    results: list[Classification] = []
    for i in range(rows.shape[0]):
        picked = anchor_idx[image_idx == i]
        scores_by_label = dict.fromkeys(labels, 0.0)
        if picked.size == 0:
            results.append(Classification(scores_by_label, ()))
            continue
        cand = rows[i, picked]
        conf = best[i, picked]
        cls = class_scores[i, picked].argmax(axis=1)
        width, height = sizes[i]
        scale = scales[i]
        # centre/size in canvas pixels -> image pixels, clipped as NudeNet clips them
        # (the corner is clipped, the size only at the far edge), so suppression
        # compares the same boxes
        cx, cy, bw, bh = (cand[:, k] / scale for k in range(4))
        x1 = np.clip(cx - bw / 2, 0, width)
        y1 = np.clip(cy - bh / 2, 0, height)
        x2 = x1 + np.minimum(bw, width - x1)
        y2 = y1 + np.minimum(bh, height - y1)
        boxes = np.stack([x1, y1, x2, y2], axis=1)
        kept = nms(boxes, conf, iou)
        detections = []
        for k in kept:
            label = labels[int(cls[k])]
            score = float(conf[k])
            scores_by_label[label] = max(scores_by_label[label], score)
            x_a, y_a, x_b, y_b = (float(v) for v in boxes[k])
            detections.append(Detection(label, score, (x_a, y_a, x_b - x_a, y_b - y_a)))
        results.append(Classification(scores_by_label, tuple(detections)))
    return results


class NudeNetClassifier:
    """NudeNet's detector behind the `Classifier` protocol.

    The onnxruntime session is thread-safe for `run`; a lock is not needed for
    inference, only for lazy creation.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        batch_size: int = 8,
        min_score: float = NUDENET_MIN_SCORE,
        labels: Sequence[str] = NUDENET_LABELS,
    ) -> None:
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        if not self.model_path.is_file():
            raise ModelUnavailable(f"model file not found: {self.model_path}")
        self._providers = list(providers)
        self._threads = threads
        self.batch_size = batch_size
        self.min_score = min_score
        self._labels = tuple(labels)
        self._session: Any = None
        self._lock = threading.Lock()
        self._name = f"nudenet-320n@{file_digest(self.model_path)[:12]}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def input_size(self) -> int:
        shape = self.session.get_inputs()[0].shape
        size = shape[2] if isinstance(shape[2], int) else 320
        return int(size)

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._load()
        return self._session

    def _load(self) -> Any:
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        chosen = [p for p in self._providers if p in available]
        if not chosen:
            raise ModelUnavailable(
                f"none of the execution providers {self._providers} is available "
                f"(this onnxruntime has {sorted(available)})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._threads:
            options.intra_op_num_threads = self._threads
        options.log_severity_level = 3
        # idle pool threads must not spin: on a small machine they would steal
        # the cores that decode and hash the next image
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(self.model_path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelUnavailable(f"cannot load model {self.model_path}: {exc}") from exc
        channels = session.get_outputs()[0].shape[1]
        if isinstance(channels, int) and channels != 4 + len(self._labels):
            raise ModelUnavailable(
                f"model {self.model_path} has {channels - 4} classes; expected {len(self._labels)}"
            )
        return session

    def warm_up(self) -> None:
        """Load the model and run it once, so the first real scan is not slow."""
        self.classify([Image.new("RGB", (64, 64))])

    def classify(self, images: Sequence[Image.Image]) -> list[Classification]:
        """Each image's label scores; images of one canvas shape share a model call."""
        return self.classify_at(images, self.input_size)

    def classify_at(self, images: Sequence[Image.Image], size: int) -> list[Classification]:
        """The same with the longest side scaled to `size` (the second look's second scale)."""
        session = self.session
        input_name = session.get_inputs()[0].name
        prepared = [letterbox(im, size) for im in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (canvas, _) in enumerate(prepared):
            by_shape.setdefault(canvas.shape, []).append(i)
        results: list[Classification | None] = [None] * len(images)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = to_batch([prepared[i][0] for i in chunk])
                output = session.run(None, {input_name: batch})[0]
                scored = postprocess(
                    output,
                    [prepared[i][1] for i in chunk],
                    [images[i].size for i in chunk],
                    self._labels,
                    self.min_score,
                )
                for i, result in zip(chunk, scored, strict=True):
                    results[i] = result
        return [r for r in results if r is not None]
