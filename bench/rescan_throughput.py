"""Rescan throughput: a folder store scanned by one process vs a process pool, same run.

Makes a pict-rs-like folder of small ordinary-looking JPEGs (synthetic and
scikit-image pictures, re-encoded at varied sizes), then times
`warden.jobs.rescan.scan_with_pool` with 1 worker and with N workers.

    .venv/bin/python bench/rescan_throughput.py [--count 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from warden.config import load_settings
from warden.jobs.rescan import StoreSpec, list_keys, scan_with_pool


def make_store(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    bases = [
        Image.fromarray(getattr(data, n)()).convert("RGB")
        for n in ("chelsea", "coffee", "rocket", "astronaut", "cat")
    ]
    for i in range(count):
        base = bases[i % len(bases)]
        w = int(rng.integers(240, 720))
        img = base.resize((w, int(w * base.height / base.width)))
        folder = root / f"{i % 97:03}"
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(60, 95)))
        (folder / f"{i:06}").write_bytes(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "files"
        make_store(root, args.count)
        spec = StoreSpec(folder=str(root))
        keys = list(list_keys(spec))
        settings = load_settings(None, data_dir=Path(tmp) / "data")
        rows = []
        for workers in (1, args.workers):
            t0 = time.perf_counter()
            decisions = [r.decision for r in scan_with_pool(settings, spec, keys, workers)]
            elapsed = time.perf_counter() - t0
            rows.append((workers, elapsed, decisions))
        base = rows[0][1]
        print(f"folder store: {len(keys)} JPEGs (240-720 px wide), {os.cpu_count()} cores")
        for workers, elapsed, _decisions in rows:
            print(
                f"  {workers} process(es): {len(keys) / elapsed:7.1f} img/s  ({elapsed:.1f} s, speed-up {base / elapsed:.2f}x)"
            )
        print(f"  same decisions in both runs: {rows[0][2] == rows[-1][2]}")
        print("  (includes model load per process; CUDA/Ray numbers need a GPU machine)")


if __name__ == "__main__":
    main()
