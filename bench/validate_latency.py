"""`/pictrs/validate` latency and throughput against the in-process scanner.

Starts `warden serve` as a subprocess on loopback (embedded defaults in a temp
folder), then posts 1 MP and 12 MP JPEGs (scikit-image's chelsea, resized) at
concurrency 1, 4 and 16 for a fixed count each, and prints p50/p95/p99 and
throughput. In the same run, before the server starts, the same images go
through `Scanner.scan` (one at a time) and `Scanner.scan_many` (batches of 8)
in this process, so the service overhead is a ratio. Targets on 2 cores: p99
<= 120 ms for 1 MP at concurrency 4; throughput at concurrency 16 within 20%
of the in-process scanner.

    .venv/bin/python bench/validate_latency.py [--count-1mp 160] [--count-12mp 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.nginx import free_port

from warden.config import load_settings
from warden.media.pipeline import ScanContext, Scanner
from warden.services import build_scanner

SIZES = {"1MP": (1155, 866), "12MP": (4000, 3000)}


def jpeg(size: tuple[int, int]) -> bytes:
    from skimage import data

    img = Image.fromarray(data.chelsea()).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def in_process(scanner: Scanner, body: bytes, count: int) -> tuple[float, float, float]:
    """(ms per image one at a time, images/s one at a time, images/s in batches of 8)."""
    ctx = ScanContext(source="upload")
    for _ in range(5):  # warm up: the first calls are slow
        scanner.scan(body, ctx)
    t0 = time.perf_counter()
    for _ in range(count):
        scanner.scan(body, ctx)
    single = time.perf_counter() - t0
    batches = max(1, count // 8)
    t0 = time.perf_counter()
    for _ in range(batches):
        scanner.scan_many([(body, ctx)] * 8)
    batched = time.perf_counter() - t0
    return single / count * 1000, count / single, batches * 8 / batched


async def load(url: str, body: bytes, concurrency: int, count: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    todo = iter(range(count))
    headers = {"Content-Type": "image/jpeg"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"unexpected answer {r.status_code}: {r.text}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, count / elapsed


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("warden serve exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("warden serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count-1mp", type=int, default=160)
    parser.add_argument("--count-12mp", type=int, default=32)
    args = parser.parse_args()
    counts = {"1MP": args.count_1mp, "12MP": args.count_12mp}
    bodies = {name: jpeg(size) for name, size in SIZES.items()}

    baseline = {}
    scanner = build_scanner(load_settings(None), require_model=True)
    for name, body in bodies.items():
        baseline[name] = in_process(scanner, body, max(16, counts[name] // 4))
        ms, single, batched = baseline[name]
        print(
            f"in-process {name} ({len(body) // 1024} KiB): {ms:.1f} ms/image, "
            f"{single:.1f} img/s one at a time, {batched:.1f} img/s in batches of 8"
        )

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "WARDEN_DATA_DIR": tmp,
            "WARDEN_SERVER__PORT": str(port),
            "WARDEN_SERVER__HOST": "127.0.0.1",
        }
        env.pop("WARDEN_CONFIG", None)
        warden = Path(sys.executable).with_name("warden")
        with subprocess.Popen(
            [str(warden), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as proc:
            try:
                wait_ready(port, proc)
                url = f"http://127.0.0.1:{port}/pictrs/validate"
                print(
                    f"\n{'image':6} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} "
                    f"{'p99 ms':>8} {'img/s':>7} {'vs in-process':>14}"
                )
                for name, body in bodies.items():
                    asyncio.run(load(url, body, 2, 4))  # warm up
                    for concurrency in (1, 4, 16):
                        lat, rate = asyncio.run(load(url, body, concurrency, counts[name]))
                        best = max(baseline[name][1], baseline[name][2])
                        print(
                            f"{name:6} {concurrency:>4} {len(lat):>5} {percentile(lat, 0.5):>8.1f} "
                            f"{percentile(lat, 0.95):>8.1f} {percentile(lat, 0.99):>8.1f} "
                            f"{rate:>7.1f} {rate / best:>13.2f}x"
                        )
            finally:
                proc.terminate()
                proc.wait(timeout=20)


if __name__ == "__main__":
    main()
