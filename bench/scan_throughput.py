"""Scanner throughput: Warden's scanner against the reference pipeline, same run.

Reference = what an admin would build from the parts: cv2 decodes the file,
NudeNet's `NudeDetector.detect` classifies it, `pdqhash.compute` hashes it.
Warden = `Scanner.scan` as the service runs it: decoding in its worker
processes (`media.isolation = "process"`, the default; `--isolation both`
adds the in-thread decoder), with a hash bank matcher (`--bank`, 100,000
random PDQ hashes in one bank by default, none of which the corpus matches),
so its time includes the bank lookups and Warden's own robust hashes of the
first frame (media/variants.py). `--bank 0` leaves the matcher out.

Every pipeline runs in a process of its own (its CPU time is its own and its
decoder processes', nothing else's), as two streams of one onnxruntime thread
(how `warden scan --workers 2` and the service run; `--layouts 2x1,1x2` adds
one stream of two threads). `--baseline DIR` also runs another source tree's
Warden (e.g. `git archive HEAD | tar -x -C DIR`) beside this one's.

The machine is shared and its load changes by the second, so the pipelines
take turns: every round times each of them once (in an order that rotates
from round to round), and each keeps its best wall time and its CPU time over
all rounds. CPU ms per image is the number to compare under load; the load
average is printed with it. Prints images/s, CPU ms per image, the ratios
against the reference's 2 x 1 layout (and the baseline tree's), ms per 12 MP
JPEG, and how often the pipelines agree on decisions and on the labels above
threshold (score differences count scores under NudeNet's reporting floor,
0.25, as 0.25).

    .venv/bin/python bench/scan_throughput.py [--repeat 5] [--baseline DIR]
        [--precision float,int8] [--isolation process|thread|both] [--bank 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data

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
HERE = Path(__file__).resolve().parent
REF = "reference, 2 streams x 1 thread"


def jpeg(image: Image.Image, size: tuple[int, int], quality: int = 88) -> bytes:
    buf = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def corpus() -> tuple[list[bytes], list[bytes]]:
    images = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in NAMES]
    small = [jpeg(im, size) for im in images for size in SMALL_SIZES]
    big = [jpeg(im, (4000, 3000)) for im in images[:4]]
    return small, big


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the child: one pipeline in a process of its own --------------------------------


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


def _reference(threads: int) -> Callable[[bytes], dict[str, float]]:
    import cv2
    import onnxruntime as ort
    import pdqhash
    from nudenet import NudeDetector

    detector = NudeDetector()
    if threads:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        detector.onnx_session = ort.InferenceSession(
            detector.onnx_session._model_path, options, providers=["CPUExecutionProvider"]
        )

    def run(payload: bytes) -> dict[str, float]:
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        pdqhash.compute(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        scores: dict[str, float] = {}
        for det in detector.detect(bgr):
            scores[det["class"]] = max(scores.get(det["class"], 0.0), float(det["score"]))
        return scores

    return run


def _bank_matcher(size: int) -> Any:
    """A matcher with one PDQ bank of `size` random hashes (None for 0), warmed up as
    the service warms it (services/bank_sync.py)."""
    if size <= 0:
        return None
    from warden.domain.banks import Bank, BankAction, BankKind
    from warden.media.matcher import BankMatcher

    rng = np.random.default_rng(16)
    matcher = BankMatcher()
    matcher.set_banks([Bank(1, "bench", BankKind.PDQ, BankAction.REJECT)])
    hashes = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    matcher.bulk_load(1, [(i, row.tobytes().hex()) for i, row in enumerate(hashes)])
    matcher.compact()
    BankMatcher.warm_up()
    return matcher


def _warden(spec: dict[str, Any]) -> tuple[Callable[[bytes], dict[str, float]], Any]:
    from warden.config import load_settings
    from warden.media.pipeline import ScanContext
    from warden.services import build_scanner

    settings = load_settings(None, data_dir=Path(spec["data_dir"]))
    if spec["scan_side"]:
        settings.media.scan_side = spec["scan_side"]
    settings.media.isolation = spec["isolation"]
    settings.model.precision = spec["precision"]
    settings.model.threads = spec["threads"]
    scanner = build_scanner(settings, matcher=_bank_matcher(spec["bank"]), require_model=True)
    scanner.start()
    ctx = ScanContext(source="cli")

    def run(payload: bytes) -> dict[str, float]:
        return dict(scanner.scan(payload, ctx).labels)

    return run, scanner


def child(spec: dict[str, Any]) -> None:
    """Build one pipeline, answer `round` / `big` / `quit` on stdin with JSON lines."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print stays out of the protocol
    small, big = corpus()
    scanner = None
    if spec["kind"] == "reference":
        fn = _reference(spec["threads"])
    else:
        fn, scanner = _warden(spec)
    pids: Callable[[], list[int]] = getattr(getattr(scanner, "decoder", None), "pids", list)
    pool = ThreadPoolExecutor(spec["workers"])
    scores = list(pool.map(fn, small))  # warm-up: workers started, sessions run once
    out.write(json.dumps({"scores": scores}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            live = pids()
            c0, t0 = _cpu_s(live), time.perf_counter()
            list(pool.map(fn, small))
            wall, cpu = time.perf_counter() - t0, _cpu_s(live) - c0
            out.write(json.dumps({"wall": wall, "cpu": cpu, "n": len(small)}) + "\n")
        elif command == "big":
            t0 = time.perf_counter()
            for payload in big:
                fn(payload)
            out.write(json.dumps({"wall": (time.perf_counter() - t0) / len(big)}) + "\n")
        else:
            break
        out.flush()
    pool.shutdown()
    if scanner is not None:
        scanner.close()


# -- the parent: start the pipelines, take turns, compare ------------------------------


@dataclass
class Pipeline:
    label: str
    spec: dict[str, Any]
    source: Path  # the tree whose src/ is imported
    proc: subprocess.Popen[str] | None = None
    scores: list[dict[str, float]] = field(default_factory=list)
    best: float = float("inf")
    cpu: float = 0.0
    items: int = 0
    big_ms: float | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(self.source / "src"))
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(self.spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.scores = self._answer()["scores"]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(
                f"{self.label}: the pipeline's process ended (run it alone to see why)"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def round(self) -> None:
        answer = self.ask("round")
        self.best = min(self.best, answer["wall"])
        self.cpu += answer["cpu"]
        self.items += answer["n"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            self.proc.wait(30)

    @property
    def cpu_ms(self) -> float:
        return self.cpu / max(self.items, 1) * 1000


def agreement(ref: list[dict[str, float]], ours: list[dict[str, float]], labels: Any) -> str:
    """How often two pipelines agree (decisions by the default policy, labels >= 0.5)."""
    from warden.config import load_settings

    policy = load_settings(None).policy.label_policy()
    full = [[dict.fromkeys(labels, 0.0) | s for s in side] for side in (ref, ours)]
    pairs = list(zip(*full, strict=True))
    decisions = sum(policy.judge(a)[0] == policy.judge(b)[0] for a, b in pairs)
    above = sum(
        {k for k, v in a.items() if v >= 0.5} == {k for k, v in b.items() if v >= 0.5}
        for a, b in pairs
    )
    # below 0.25 NudeNet reports nothing (Warden reports down to model.min_score)
    diff = max(abs(max(a[k], FLOOR) - max(b[k], FLOOR)) for a, b in pairs for k in labels)
    n = len(pairs)
    return f"decisions agree {decisions}/{n}, labels >= 0.5 agree {above}/{n}, max score difference {diff:.3f}"


def pipelines(args: argparse.Namespace, data_dir: str) -> list[Pipeline]:
    here = HERE.parent
    found = [
        Pipeline(REF, {"kind": "reference", "threads": 1, "workers": 2}, here),
    ]
    if "1x2" in args.layouts:
        found.append(
            Pipeline(
                "reference, 1 stream x 2 threads (NudeNet default)",
                {"kind": "reference", "threads": 0, "workers": 1},
                here,
            )
        )
    trees = [("", here)] + ([("baseline ", args.baseline.resolve())] if args.baseline else [])
    isolations = ("process", "thread") if args.isolation == "both" else (args.isolation,)
    for name, tree in trees:
        for isolation in isolations:
            for precision in args.precision.split(","):
                for layout in args.layouts.split(","):
                    workers, threads = (int(x) for x in layout.split("x"))
                    spec = {
                        "kind": "warden",
                        "precision": precision,
                        "isolation": isolation,
                        "threads": threads,
                        "workers": workers,
                        "bank": args.bank,
                        "scan_side": args.scan_side,
                        "data_dir": data_dir,
                    }
                    label = f"{name}warden {precision} {isolation}, {workers} x {threads}"
                    found.append(Pipeline(label, spec, tree))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scan-side", type=int, default=None, help="media.scan_side for Warden")
    parser.add_argument("--isolation", choices=("process", "thread", "both"), default="process")
    parser.add_argument("--precision", default="float,int8", help="model.precision values")
    parser.add_argument(
        "--layouts", default="2x1", help="streams x onnxruntime threads, e.g. 2x1,1x2"
    )
    parser.add_argument(
        "--bank",
        type=int,
        default=100_000,
        help="random PDQ hashes in the matcher's bank (0: no matcher, no robust hashes)",
    )
    parser.add_argument("--baseline", type=Path, help="another source tree, run beside this one")
    parser.add_argument("--big", type=int, default=1, help="rounds of 12 MP JPEGs (0: none)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    small, big = corpus()
    print(
        f"corpus: {len(small)} JPEGs of 0.3-0.8 MP, {len(big)} JPEGs of 12 MP,"
        f" {os.cpu_count()} cores; bank: {args.bank} random PDQ hashes; {load()}"
    )
    with tempfile.TemporaryDirectory() as data_dir:
        runs = pipelines(args, data_dir)
        try:
            for p in runs:  # one at a time: the first int8 one makes the int8 copy
                p.start()
            print(f"started {len(runs)} pipelines; {load()}")
            for r in range(args.repeat):
                turn = runs[r % len(runs) :] + runs[: r % len(runs)]
                for p in turn if r % 2 == 0 else reversed(turn):
                    p.round()
                print(f"round {r + 1}/{args.repeat} done; {load()}")
            for _ in range(args.big):
                for p in runs:
                    ms = p.ask("big")["wall"] * 1000
                    p.big_ms = ms if p.big_ms is None else min(p.big_ms, ms)
        finally:
            for p in runs:
                p.stop()

    ref = next(p for p in runs if p.label == REF)
    base = {p.label.removeprefix("baseline "): p for p in runs if p.label.startswith("baseline ")}
    n = len(small)
    print(
        f"\n{'pipeline':52} {'img/s':>6} {'cpu ms/img':>10} {'cpu vs ref':>10}"
        f" {'vs baseline':>11} {'12 MP ms':>8}"
    )
    for p in runs:
        other = base.get(p.label)
        versus = f"{other.cpu_ms / p.cpu_ms:10.2f}x" if other is not None else ""
        big_ms = f"{p.big_ms:8.0f}" if p.big_ms is not None else ""
        print(
            f"{p.label:52} {n / p.best:6.1f} {p.cpu_ms:10.2f} {ref.cpu_ms / p.cpu_ms:9.2f}x"
            f" {versus:>11} {big_ms:>8}"
        )
    print(
        "cpu ms/img: CPU time per image over every round (the pipeline's own process and"
        " its decoder processes); 'cpu vs ref' against the reference's 2 x 1 layout; it"
        " holds still when other work shares the cores, which img/s (best round) does not."
    )
    from warden.media.classify import NUDENET_LABELS

    by_label = {p.label: p for p in runs}
    for precision in args.precision.split(","):
        for p in runs:
            if p.spec.get("precision") == precision and not p.label.startswith("baseline"):
                print(f"{p.label} vs reference: {agreement(ref.scores, p.scores, NUDENET_LABELS)}")
                break
    floats = [p for p in runs if p.spec.get("precision") == "float"]
    for p in runs:
        twin = p.label.replace(" int8 ", " float ")
        if p.spec.get("precision") == "int8" and twin in by_label and floats:
            print(
                f"{p.label} vs float: {agreement(by_label[twin].scores, p.scores, NUDENET_LABELS)}"
            )
            break
    print(f"(best of {args.repeat} interleaved rounds each; {load()})")


if __name__ == "__main__":
    main()
