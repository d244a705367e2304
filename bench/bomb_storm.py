"""Ordinary uploads during a storm of bombs, through a real `warden serve`.

Starts `warden serve` on a free loopback port (SQLite, a temporary data folder,
evidence off), then sends ordinary JPEG uploads (0.3-0.8 MP photos from
scikit-image) to `/pictrs/validate` one after another: first alone, then while
20 bombs are kept in flight at all times (issue 12's: progressive JPEG with
5,000 scans, GIF canvas growth, a 50-byte GIF declaring 4 GB, a TIFF with a
20000 x 20000 second page, 30-byte WebPs declaring 16384 x 16384, a TIFF tile
that overflows, a corrupt AVIF). Prints p50/p99 of the ordinary uploads in both
phases, their ratio (target: p99 during the storm <= 3x alone), how the bombs
were answered and how fast, the CPU the service's process tree used per second
of storm, and its peak RSS (the service, its fork server and decoder
processes), read from /proc, with the load average beside each phase.

The bombs come from a second process (`--bomber`, started by this script), so
the ordinary uploads' client measures the service, not its own event loop busy
with 20 bombers (pict-rs, the real client, is a multi-threaded Rust program).
The storm is closed-loop: each of the 20 connections sends its next bomb when
the last is answered, so the faster bombs are refused the more of them come
(and `server.refusal_pace_ms` holds them to 20 / the pace per second). `--rate R`
adds an open-loop storm that is not slowed by answers: R bombs a second, each
sent on time whatever is still in flight (the rate the unpaced closed loop
reached was ~360/s on a quiet 2-core machine).

`--slow` adds a second storm of files that pass every limit yet are as costly
as the limits allow (10000 x 10000 progressive JPEGs with 20 scans, the whole
`media.max_scan_pixels` budget, ~0.8 s each): what a storm of legitimately
large files does to ordinary uploads, i.e. capacity rather than a bomb.

    .venv/bin/python bench/bomb_storm.py [--uploads 300] [--slow] [--rate R] [--baseline DIR] [--rounds N]

`--baseline DIR` measures another source tree (e.g. `git archive HEAD | tar -x -C
DIR`) in the same run, alternating baseline and current `--rounds` times, so the
two are compared under the same load on a shared machine; the medians of each
storm's p99 ratio are printed side by side at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import signal
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
from tests.web.test_bomb_storm import _descendants, tree_rss

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


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of a process and its live descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


async def stream(
    client: httpx.AsyncClient, uploads: list[bytes], count: int, seconds: float = 1e9
) -> list[float]:
    """Latencies (ms) of `count` ordinary uploads sent one after another, or as many as
    `seconds` allow (a refusal, such as scan_timeout, is counted in REFUSED and its
    latency kept)."""
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    for i in range(count):
        if time.perf_counter() > until and len(latencies) >= 20:
            break
        t0 = time.perf_counter()
        answer = await client.post("/pictrs/validate", content=uploads[i % len(uploads)])
        latencies.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200:
            REFUSED[answer.json().get("error", str(answer.status_code))] += 1
    return latencies


class RawClient:
    """A minimal HTTP/1.1 client for the storm (keep-alive connections reused, one
    request per connection at a time): httpx's pool slows down with hundreds of
    requests in flight, so an open-loop storm through it would not reach its rate."""

    def __init__(self, base: str) -> None:
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str] | None]:
        """The status and JSON answer (None when the body is not JSON, e.g. uvicorn's
        503 over `limit_concurrency`); a kept-alive connection the server closed
        meanwhile is replaced once."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, path, body)
            except (OSError, asyncio.IncompleteReadError):
                continue  # closed while idle (keep-alive timeout): try another
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return await self._exchange(reader, writer, path, body)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
    ) -> tuple[int, dict[str, str] | None]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            status_line, _, headers = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
            length, close = 0, False
            for header in headers.split(b"\r\n"):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                close |= name.strip().lower() == b"connection" and b"close" in value.lower()
            payload = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self.idle.append((reader, writer))
        try:
            answer = json.loads(payload or b"{}")
        except ValueError:
            answer = None
        return int(status_line.split()[1]), answer

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def post_bomb(client: RawClient, body: bytes, answers: Counter[str]) -> None:
    try:
        status, answer = await client.post("/pictrs/validate", body)
        code = "not JSON" if answer is None else answer.get("error", "accepted")
        answers[f"{status} {code}"] += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        answers[f"client {type(exc).__name__}"] += 1


async def closed_loop(
    client: RawClient, payloads: list[bytes], stop: asyncio.Event, answers: Counter[str]
) -> None:
    i = 0
    while not stop.is_set():
        await post_bomb(client, payloads[i % len(payloads)], answers)
        i += 1


async def open_loop(
    client: RawClient,
    payloads: list[bytes],
    rate: float,
    stop: asyncio.Event,
    answers: Counter[str],
    sent: list[int],
) -> None:
    """Send `rate` bombs a second on a fixed schedule, whatever is still unanswered."""
    started = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        due = started + sent[0] / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        body = payloads[sent[0] % len(payloads)]
        task = asyncio.create_task(post_bomb(client, body, answers))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent[0] += 1
    for task in list(pending):
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def bomber(base: str, mode: str, slow: bool) -> None:
    """The storm, in its own process: bombs until a line arrives on stdin, then prints
    how they were answered (JSON). `mode`: "closed" (20 connections, each sending its
    next bomb when answered) or a rate per second (open loop)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    payloads = storm_bombs(slow)
    answers: Counter[str] = Counter()
    stop = asyncio.Event()
    client = RawClient(base)
    await post_bomb(client, payloads[0], Counter())
    print("ready", flush=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sent = [0]
    if mode == "closed":
        tasks = [
            asyncio.create_task(closed_loop(client, payloads[i:] + payloads[:i], stop, answers))
            for i in range(20)
        ]
    else:
        tasks = [asyncio.create_task(open_loop(client, payloads, float(mode), stop, answers, sent))]
    await asyncio.to_thread(sys.stdin.readline)
    elapsed = time.perf_counter() - t0
    stop.set()
    counted = dict(answers)  # answered while the ordinary uploads were measured
    cpu = (time.process_time() - cpu0) / elapsed
    await asyncio.gather(*tasks)
    client.close()
    report = {"answers": counted, "seconds": elapsed, "sent": sent[0], "cpu": cpu}
    print(json.dumps(report), flush=True)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def storm(
    client: httpx.AsyncClient,
    uploads: list[bytes],
    count: int,
    mode: str,
    slow: bool,
    seconds: float,
) -> tuple[list[float], dict[str, int], float]:
    """Ordinary uploads while the bomber process storms; their latencies, how the bombs
    were answered and how many bombs a second."""
    command = [sys.executable, __file__, "--bomber", mode, "--url", str(client.base_url)]
    proc = subprocess.Popen(
        command + (["--slow"] if slow else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = await asyncio.to_thread(proc.stdout.readline)
        if ready.strip() != "ready":
            raise SystemExit(f"the bomber did not start: {ready!r}")
        await asyncio.sleep(0.5)  # the storm is on before the first ordinary upload
        latencies = await stream(client, uploads, count, seconds)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        report = json.loads(await asyncio.to_thread(proc.stdout.readline))
    finally:
        proc.wait(60)
    answers = report["answers"]
    per_s = sum(answers.values()) / report["seconds"]
    if mode != "closed":
        answers["sent/s"] = round(report["sent"] / report["seconds"])
    answers["bomber CPU %"] = round(report["cpu"] * 100)
    return latencies, answers, per_s


def line(label: str, values: list[float]) -> str:
    return f"{label:34} p50 {pct(values, 50):7.1f} ms   p99 {pct(values, 99):7.1f} ms   n={len(values)}"


async def run(
    base: str, server_pid: int, count: int, slow: bool, rate: float | None, seconds: float
) -> dict[str, float]:
    """Every phase against one server; each storm's p99 ratio, by storm."""
    uploads = ordinary_uploads()
    ratios: dict[str, float] = {}
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await stream(client, uploads, 10)  # warm-up
        cpu0, t0 = tree_cpu_s(server_pid), time.perf_counter()
        with Sampler(server_pid) as idle:
            alone = await stream(client, uploads, count)
        cpu = (tree_cpu_s(server_pid) - cpu0) / (time.perf_counter() - t0)
        REFUSED.clear()
        print(line("ordinary uploads alone", alone) + f"   ({load()})")
        print(f"{'':34} service CPU {cpu:.2f} cores   peak RSS {idle.peak / GIB:.2f} GiB")
        kinds = [("closed", False, "storm of 20 bombs")]
        if rate is not None:
            kinds.append((f"{rate:g}", False, f"open storm, {rate:g} bombs/s"))
        if slow:
            kinds.append(("closed", True, "storm of 20 costly files"))
        for mode, is_slow, label in kinds:
            cpu0, t0 = tree_cpu_s(server_pid), time.perf_counter()
            with Sampler(server_pid) as sampled:
                during, answers, per_s = await storm(client, uploads, count, mode, is_slow, seconds)
            cpu = (tree_cpu_s(server_pid) - cpu0) / (time.perf_counter() - t0)
            ratio = pct(during, 99) / pct(alone, 99)
            ratio50 = pct(during, 50) / pct(alone, 50)
            print(line(f"ordinary uploads during {label}", during) + f"   ({load()})")
            print(
                f"{'':34} p99 ratio {ratio:.2f}x (target <= 3x)   p50 ratio {ratio50:.2f}x   peak RSS "
                f"{sampled.peak / GIB:.2f} GiB (target <= 1.5)   service CPU {cpu:.2f} cores"
            )
            print(f"{'':34} bombs answered: {per_s:.0f}/s {answers}")
            print(f"{'':34} ordinary uploads refused: {dict(REFUSED) or 'none'}")
            REFUSED.clear()
            ratios[f"{label}, p99"] = ratio
            ratios[f"{label}, p50"] = ratio50
    return ratios


def serve_and_run(
    source: Path | None, count: int, slow: bool, rate: float | None, seconds: float
) -> dict[str, float]:
    """Start `warden serve` (this tree's, or `source`'s with its own src/ first on the
    path), run the phases against it, stop it; each storm's p99 ratio."""
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
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
                    raise SystemExit(f"warden serve exited with {server.returncode}")
                time.sleep(0.2)
            label = f"baseline {source}" if source else "current tree"
            print(f"{label}: warden serve on {base}, pid {server.pid}, {os.cpu_count()} cores")
            return asyncio.run(run(base, server.pid, count, slow, rate, seconds))
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--rate", type=float, help="add an open-loop storm of R bombs/s")
    parser.add_argument(
        "--storm-s",
        type=float,
        default=40.0,
        help="longest a storm phase sends ordinary uploads (an overloaded service may "
        "answer each in seconds)",
    )
    parser.add_argument("--baseline", type=Path, help="another source tree to compare")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--bomber", help=argparse.SUPPRESS)  # the storm's own process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers started
    if args.bomber is not None:
        asyncio.run(bomber(args.url, args.bomber, args.slow))
        return
    if args.baseline is None:
        for _ in range(args.rounds):
            serve_and_run(None, args.uploads, args.slow, args.rate, args.storm_s)
        return
    runs: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    for round_no in range(args.rounds):
        print(f"--- round {round_no + 1} of {args.rounds} ({load()})")
        for name, source in (("baseline", args.baseline), ("current", None)):
            measured = serve_and_run(source, args.uploads, args.slow, args.rate, args.storm_s)
            for storm_name, ratio in measured.items():
                runs[name].setdefault(storm_name, []).append(ratio)
    print(f"--- during / alone, per round ({load()})")
    for name, storms in runs.items():
        for storm_name, ratios in storms.items():
            shown = ", ".join(f"{r:.2f}x" for r in ratios)
            print(f"{name:9} {storm_name:33} {shown}  (median {statistics.median(ratios):.2f}x)")


if __name__ == "__main__":
    main()
