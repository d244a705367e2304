"""Ordinary uploads during a storm of bombs, through a real `warden serve`.

Starts `warden serve` on a free loopback port (SQLite, a temporary data folder,
evidence off), then sends ordinary JPEG uploads (0.3-0.8 MP photos from
scikit-image) to `/pictrs/validate` one after another: first alone, then while
20 bombs are kept in flight at all times (issue 12's: progressive JPEG with
5,000 scans, GIF canvas growth, a 50-byte GIF declaring 4 GB, a TIFF with a
20000 x 20000 second page, 30-byte WebPs declaring 16384 x 16384, a TIFF tile
that overflows, a corrupt AVIF). Prints p50/p99 of the ordinary uploads in both
phases, their ratio (target: p99 during the storm <= 3x alone), how the bombs
were answered, and the peak RSS of the service's process tree (the service,
its fork server and decoder processes), read from /proc.

`--slow` adds a second storm of files that pass every limit yet are as costly
as the limits allow (10000 x 10000 progressive JPEGs with 20 scans, the whole
`media.max_scan_pixels` budget, ~0.8 s each): what a storm of legitimately
large files does to ordinary uploads, i.e. capacity rather than a bomb.

    .venv/bin/python bench/bomb_storm.py [--uploads 150] [--slow] [--baseline DIR] [--rounds N]

`--baseline DIR` measures another source tree (e.g. `git archive HEAD | tar -x -C
DIR`) in the same run, alternating baseline and current `--rounds` times, so the
two are compared under the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image
from skimage import data as samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import bombs
from tests.web.test_bomb_storm import tree_rss

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera")
SIZES = ((640, 480), (800, 600), (1000, 750), (1024, 683))
GIB = 1024**3


def ordinary_uploads() -> list[bytes]:
    out = []
    for name in NAMES:
        image = Image.fromarray(getattr(samples, name)()).convert("RGB")
        for size in SIZES:
            buf = io.BytesIO()
            image.resize(size).save(buf, "JPEG", quality=88)
            out.append(buf.getvalue())
    return out


def storm_bombs(slow: bool) -> list[bytes]:
    if slow:
        return [bombs.progressive_scan_bomb(14)]  # 6 + 14 = 20 scans of 100 MP
    avif = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 100, 50)).save(avif, "AVIF", quality=60)
    return [
        bombs.progressive_scan_bomb(5000),
        bombs.gif_canvas_growth(),
        bombs.gif_tiny_huge(),
        bombs.tiff_pages([(16, 16), (20_000, 20_000)]),
        bombs.webp_tiny_huge(),
        bombs.webp_tiny_huge("VP8L"),
        bombs.tiff_pages([(16, 16)], tile=0xFFFFFFF0),
        bombs.corrupt(avif.getvalue(), 0.3),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sampler:
    """Peak RSS of a process tree, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> Sampler:
        self.peak = tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


REFUSED: Counter[str] = Counter()  # ordinary uploads not accepted, by error code


async def stream(client: httpx.AsyncClient, uploads: list[bytes], count: int) -> list[float]:
    """Latencies (ms) of `count` ordinary uploads sent one after another (a refusal,
    such as scan_timeout, is counted in REFUSED and its latency kept)."""
    latencies = []
    for i in range(count):
        t0 = time.perf_counter()
        answer = await client.post("/pictrs/validate", content=uploads[i % len(uploads)])
        latencies.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200:
            REFUSED[answer.json().get("error", str(answer.status_code))] += 1
    return latencies


async def keep_bombing(
    client: httpx.AsyncClient, payloads: list[bytes], stop: asyncio.Event, answers: Counter[str]
) -> None:
    i = 0
    while not stop.is_set():
        body = payloads[i % len(payloads)]
        i += 1
        answer = await client.post("/pictrs/validate", content=body)
        answers[f"{answer.status_code} {answer.json().get('error', 'accepted')}"] += 1


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def storm(
    client: httpx.AsyncClient, uploads: list[bytes], count: int, payloads: list[bytes]
) -> tuple[list[float], Counter[str]]:
    stop = asyncio.Event()
    answers: Counter[str] = Counter()
    bombers = [
        asyncio.create_task(keep_bombing(client, payloads[i:] + payloads[:i], stop, answers))
        for i in range(20)
    ]
    await asyncio.sleep(0.5)  # the storm is on before the first ordinary upload
    latencies = await stream(client, uploads, count)
    stop.set()
    await asyncio.gather(*bombers)
    return latencies, answers


def line(label: str, values: list[float]) -> str:
    return f"{label:34} p50 {pct(values, 50):7.1f} ms   p99 {pct(values, 99):7.1f} ms   n={len(values)}"


async def run(base: str, server_pid: int, count: int, slow: bool) -> list[float]:
    uploads = ordinary_uploads()
    ratios: list[float] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await stream(client, uploads, 10)  # warm-up
        with Sampler(server_pid) as idle:
            alone = await stream(client, uploads, count)
        REFUSED.clear()
        print(line("ordinary uploads alone", alone))
        print(f"{'':34} peak RSS {idle.peak / GIB:.2f} GiB")
        kinds = [(False, "storm of 20 bombs")] + (
            [(True, "storm of 20 costly files")] if slow else []
        )
        for is_slow, label in kinds:
            with Sampler(server_pid) as sampled:
                during, answers = await storm(client, uploads, count, storm_bombs(is_slow))
            ratio = pct(during, 99) / pct(alone, 99)
            print(line(f"ordinary uploads during {label}", during))
            print(
                f"{'':34} p99 ratio {ratio:.2f}x (target <= 3x)   peak RSS "
                f"{sampled.peak / GIB:.2f} GiB (target <= 1.5)"
            )
            print(f"{'':34} bombs answered: {dict(answers)}")
            print(f"{'':34} ordinary uploads refused: {dict(REFUSED) or 'none'}")
            REFUSED.clear()
            ratios.append(ratio)
    return ratios


def serve_and_run(source: Path | None, count: int, slow: bool) -> list[float]:
    """Start `warden serve` (this tree's, or `source`'s with its own src/ first on the
    path), run the phases against it, stop it; the storm's p99 ratios."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "WARDEN_DATA_DIR": tmp,
            "WARDEN_EVIDENCE__ENABLED": "false",
            "WARDEN_SERVER__PORT": str(port),
        }
        if source is None:
            command = [str(Path(sys.executable).with_name("warden")), "serve"]
        else:
            env["PYTHONPATH"] = str(source / "src")
            command = [sys.executable, "-c", "from warden.cli import main; main()", "serve"]
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(server.stderr.read().decode() if server.stderr else "")
                time.sleep(0.2)
            label = f"baseline {source}" if source else "current tree"
            print(f"{label}: warden serve on {base}, pid {server.pid}, {os.cpu_count()} cores")
            return asyncio.run(run(base, server.pid, count, slow))
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=150)
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another source tree to compare")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.baseline is None:
        serve_and_run(None, args.uploads, args.slow)
        return
    runs: dict[str, list[float]] = {"baseline": [], "current": []}
    for _ in range(args.rounds):
        runs["baseline"].append(serve_and_run(args.baseline, args.uploads, args.slow)[0])
        runs["current"].append(serve_and_run(None, args.uploads, args.slow)[0])
    for name, ratios in runs.items():
        shown = ", ".join(f"{r:.2f}x" for r in ratios)
        print(
            f"{name:9} storm p99 ratio per round: {shown}  (median {statistics.median(ratios):.2f}x)"
        )


if __name__ == "__main__":
    main()
