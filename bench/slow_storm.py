"""`/pictrs/validate` latency with and without a storm of slow connections.

Starts `warden serve` as a subprocess on loopback with the soft open-files limit
many hosts give services (1,024; the hard limit as it is), embedded defaults in a
temp folder and the bundled model. Measures sequential validations of a 1 MP JPEG
(scikit-image's chelsea): first with no other client (the baseline), then while
`--slow` connections (default 1,100) each hold half a request open, and prints
p50/p99 of both, their ratio, how many validations were answered and how many slow
connections the server still held at the end (they are dropped only after
`server.header_timeout_s`, set high here so the whole storm lasts).

    .venv/bin/python bench/slow_storm.py [--slow 1100] [--count 40]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.nginx import free_port, wait_for_port

HALF_REQUEST = b"POST /pictrs/validate HTTP/1.1\r\nHost: warden\r\nContent-Type: image/jp"


def jpeg() -> bytes:
    from skimage import data

    img = Image.fromarray(data.chelsea()).convert("RGB").resize((1155, 866))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def validations(url: str, body: bytes, count: int) -> tuple[list[float], int]:
    """Latencies in ms of the answered validations, and how many were answered 200."""
    times, ok = [], 0
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                answer = client.post(url, content=body, headers={"Content-Type": "image/jpeg"})
            except httpx.HTTPError:
                continue
            times.append((time.perf_counter() - t0) * 1000)
            ok += answer.status_code == 200
    return times, ok


def soft_limit_1024() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1100)
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.slow * 2 + 256)), hard))
    body = jpeg()
    port = free_port()
    url = f"http://127.0.0.1:{port}/pictrs/validate"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env |= {"WARDEN_DATA_DIR": tmp, "WARDEN_SERVER__HEADER_TIMEOUT_S": "600"}
        warden = Path(sys.executable).with_name("warden")
        server = subprocess.Popen(
            [str(warden), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=soft_limit_1024,
        )
        slow: list[socket.socket] = []
        try:
            wait_for_port(port, timeout_s=90)
            validations(url, body, 5)  # warm up
            base, base_ok = validations(url, body, args.count)
            for _ in range(args.slow):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(HALF_REQUEST)
                slow.append(sock)
            storm, storm_ok = validations(url, body, args.count)
            held = 0
            for sock in slow:
                sock.setblocking(False)
                try:
                    held += sock.recv(1, socket.MSG_PEEK) != b""
                except BlockingIOError:
                    held += 1
                except OSError:
                    pass
        finally:
            for sock in slow:
                sock.close()
            server.terminate()
            server.wait(timeout=30)
    print(f"validations of a 1 MP JPEG, sequential, {args.count} each; server soft nofile 1024")
    print(f"{'':22} {'answered 200':>12} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        f"{'baseline (no storm)':22} {base_ok:>12} {percentile(base, 0.5):8.1f} {percentile(base, 0.99):8.1f}"
    )
    if storm:
        print(
            f"{f'{args.slow} slow connections':22} {storm_ok:>12} {percentile(storm, 0.5):8.1f} {percentile(storm, 0.99):8.1f}"
        )
        print(f"p99 ratio storm/baseline: {percentile(storm, 0.99) / percentile(base, 0.99):.2f}")
    else:
        print(f"{f'{args.slow} slow connections':22} {storm_ok:>12} (none answered)")
    print(f"slow connections still held by the server at the end: {held}/{args.slow}")


if __name__ == "__main__":
    main()
