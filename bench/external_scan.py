"""What an external scanner and the alerts add per file, against baselines from the same run.

1. `ExternalScans.apply` with one PhotoDNA-shaped scanner on a loopback double
   (answering at once), files sent 16 at a time, concurrency limit 4: p50/p99 per
   file, vs the same POSTs made with a bare httpx client (the adapter's own cost
   is the difference; the network and the double's cost are in both).
2. `Alerts.observe` per decision (dedup, spike detector) in a flood of refusals,
   vs the unconfigured path (no Alerts object: one `is None` test).

    .venv/bin/python bench/external_scan.py [--files 400]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import encode, gradient
from tests.scanners import doubles
from tests.servers.uvicorn_thread import ServedApp

from warden.config import load_settings
from warden.domain.verdict import Decision, Reason, Verdict
from warden.services.alerts import Alerts
from warden.services.external_scan import build_external_scans


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_batches(files: int, one: object) -> list[float]:
    times: list[float] = []

    async def run() -> None:
        t0 = time.perf_counter()
        await one()  # type: ignore[operator]
        times.append((time.perf_counter() - t0) * 1000)

    for start in range(0, files, 16):
        await asyncio.gather(*(run() for _ in range(min(16, files - start))))
    return times


async def scanners(url: str, files: int, tmp: Path) -> None:
    data = encode(gradient(480, 360, seed=9))
    sha = hashlib.sha256(data).hexdigest()
    table = {
        "name": "pdna",
        "kind": "photodna",
        "url": f"{url}/photodna/v1.0/Match",
        "secret": doubles.PHOTODNA_KEY,
        "concurrency": 4,
    }
    settings = load_settings(None, data_dir=tmp, scanners={"external": [table]})
    scans = build_external_scans(settings)
    assert scans is not None
    verdict = Verdict(Decision.ACCEPT, (), sha256=sha, size=len(data))
    headers = {"Ocp-Apim-Subscription-Key": doubles.PHOTODNA_KEY, "Content-Type": "image/jpeg"}
    async with httpx.AsyncClient() as bare:
        limit = asyncio.Semaphore(4)

        async def raw() -> None:
            async with limit:
                r = await bare.post(f"{url}/photodna/v1.0/Match", content=data, headers=headers)
                r.json()

        async def adapter() -> None:
            await scans.apply(verdict, data, "image/jpeg", "upload")

        await timed_batches(32, raw)  # warm both paths
        await timed_batches(32, adapter)
        base: list[float] = []
        ours: list[float] = []
        for _ in range(files // 64):  # interleaved, so load on the machine hits both alike
            base += await timed_batches(64, raw)
            ours += await timed_batches(64, adapter)
    await scans.aclose()
    print(f"scanner, {files} files, 16 in flight, limit 4 (ms per file):")
    print(f"  bare httpx    p50 {pct(base, 0.5):6.2f}  p99 {pct(base, 0.99):6.2f}")
    print(f"  ExternalScans p50 {pct(ours, 0.5):6.2f}  p99 {pct(ours, 0.99):6.2f}")
    print(
        f"  ratio p50 {pct(ours, 0.5) / pct(base, 0.5):.2f}  p99 {pct(ours, 0.99) / pct(base, 0.99):.2f}"
    )


def alerts(tmp: Path, decisions: int = 200_000) -> None:
    settings = load_settings(None, data_dir=tmp)
    live = Alerts([], settings.alerts)  # no channel: measures the bookkeeping alone
    refused = Verdict(Decision.REJECT, (Reason("label_reject", "x"),), sha256="ab" * 32, size=1)
    none: Alerts | None = None
    t0 = time.perf_counter()
    for _ in range(decisions):
        if none is not None:
            none.observe(refused, source="upload")
    base = (time.perf_counter() - t0) / decisions * 1e9
    t0 = time.perf_counter()
    for _ in range(decisions):
        live.observe(refused, source="upload")
    ours = (time.perf_counter() - t0) / decisions * 1e9
    print(
        f"alerts, {decisions} refusals: unconfigured {base:.0f} ns, observe {ours:.0f} ns per decision"
    )
    print(f"  {ours / 1000:.2f} us per decision = {ours / 1e6 * 100:.3f} % of a 1 ms scan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    served = ServedApp(doubles.app())
    served.start()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            asyncio.run(scanners(f"http://127.0.0.1:{served.port}", args.files, Path(tmp)))
        finally:
            served.stop()
        alerts(Path(tmp))


if __name__ == "__main__":
    main()
