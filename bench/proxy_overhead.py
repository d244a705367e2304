"""What Warden's ingest proxy costs an upload, against straight to pict-rs, same run.

Three ways for one upload (a distinct 640x480 JPEG each time, so no cache of an
earlier decision answers), interleaved round by round over loopback:

- `pictrs`: straight to a pict-rs double that validates nothing (the floor);
- `hook`: straight to a pict-rs double whose `external_validation` is Warden's
  /pictrs/validate (a deployment without the proxy: the hook scans);
- `proxy`: to Warden's /pictrs-proxy/image as Lemmy forwards it (the uploader's
  token and address): identity look-up, scan in the proxy, forward to the
  pict-rs double, whose hook recognises the decided bytes, alias recorded.

Prints p50/p99 per way and the ratios proxy/hook and proxy/pictrs, and how
often Lemmy was asked who the uploader is (`lemmy.identity_ttl_s` caches it).

    .venv/bin/python bench/proxy_overhead.py [--uploads 40] [--identity-ttl 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import encode, gradient
from tests.servers.lemmy_double import LemmyDouble
from tests.servers.pictrs import PictrsDouble
from tests.servers.uvicorn_thread import ServedApp
from tests.web.gate import gate_services, gate_settings

from warden.media.classify import NudeNetClassifier
from warden.web.app import create_app

NGINX = "10.0.0.5"  # Lemmy's peer, in server.trusted_proxies (as in tests/web/test_attribution.py)
WAYS = ("pictrs", "hook", "proxy")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pictures(count: int, offset: int) -> list[bytes]:
    return [encode(gradient(640, 480, seed=offset + i), "JPEG", quality=90) for i in range(count)]


async def measure(
    urls: dict[str, str], token: str, images: dict[str, list[bytes]], warm: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {w: [] for w in WAYS}
    refused: dict[str, int] = {}
    login = {"Authorization": f"Bearer {token}"}
    lemmy_headers = [
        *login.items(),
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-For", NGINX),
    ]
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(len(images["proxy"])):
            for way in WAYS:
                headers = lemmy_headers if way == "proxy" else []
                files = {"images[]": ("u.jpg", images[way][i], "image/jpeg")}
                start = time.perf_counter()
                answer = await client.post(urls[way], files=files, headers=headers)
                elapsed = (time.perf_counter() - start) * 1000
                if answer.status_code not in (200, 201):
                    refused[way] = refused.get(way, 0) + 1
                if i >= warm:
                    timings[way].append(elapsed)
    if refused:
        print(f"refused (timed all the same): {refused}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=40, help="measured uploads per way")
    parser.add_argument("--warm", type=int, default=5, help="unmeasured uploads per way first")
    parser.add_argument("--identity-ttl", type=float, default=60.0, help="lemmy.identity_ttl_s")
    args = parser.parse_args()
    count = args.uploads + args.warm
    images = {way: pictures(count, 1000 * n) for n, way in enumerate(WAYS)}
    model = NudeNetClassifier(threads=2)
    model.warm_up()
    lemmy = LemmyDouble("0.19.5")
    lemmy.start()
    with tempfile.TemporaryDirectory() as tmp:
        person = lemmy.add_user("t-bench", "bencher", timedelta(days=30))
        floor, hooked = PictrsDouble(None), PictrsDouble(None)
        served = [ServedApp(floor.app()), ServedApp(hooked.app())]
        for s in served:
            s.start()
        settings = gate_settings(
            Path(tmp),
            f"sqlite:///{Path(tmp) / 'warden.db'}",
            pictrs={"url": f"http://127.0.0.1:{served[1].port}"},
            lemmy={"url": lemmy.url, "api": "auto", "identity_ttl_s": args.identity_ttl},
            server={"trusted_proxies": ["10.0.0.0/8"]},
        )
        services = gate_services(settings, model)
        warden = ServedApp(  # as `warden serve` runs it: the client is the TCP peer
            create_app(settings, services), on_stop=services.aclose, proxy_headers=False
        )
        warden.start()
        base = f"http://127.0.0.1:{warden.port}"
        hooked.validation_url = f"{base}/pictrs/validate"
        urls = {
            "pictrs": f"http://127.0.0.1:{served[0].port}/image",
            "hook": f"http://127.0.0.1:{served[1].port}/image",
            "proxy": f"{base}/pictrs-proxy/image",
        }
        try:
            timings = asyncio.run(measure(urls, person.token, images, args.warm))
            assert services.decisions is not None
            for r in services.decisions.recent(limit=10_000):
                if r.verdict.decision.value != "accept":
                    codes = ",".join(x.code for x in r.verdict.reasons)
                    print(f"  decision #{r.id} ({r.source}): {r.verdict.decision.value} {codes}")
        finally:
            warden.stop()
            for s in served:
                s.stop()
            lemmy.stop()
        calls = lemmy.identity_calls
    print(f"{args.uploads} uploads per way (640x480 JPEG, each distinct), interleaved, 2 cores")
    print(f"{'way':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for way in WAYS:
        t = timings[way]
        print(
            f"{way:8} {percentile(t, 0.5):8.1f} {percentile(t, 0.99):8.1f}"
            f" {statistics.fmean(t):8.1f}"
        )
    for other in ("hook", "pictrs"):
        p50 = percentile(timings["proxy"], 0.5) / percentile(timings[other], 0.5)
        p99 = percentile(timings["proxy"], 0.99) / percentile(timings[other], 0.99)
        print(f"proxy / {other}: p50 x{p50:.2f}, p99 x{p99:.2f}")
    extra = percentile(timings["proxy"], 0.5) - percentile(timings["hook"], 0.5)
    print(f"proxy - hook at p50: {extra:+.1f} ms (identity look-up, forward, alias record)")
    if calls:
        print(f"Lemmy identity look-ups: {calls} (identity_ttl_s={args.identity_ttl:g})")


if __name__ == "__main__":
    main()
